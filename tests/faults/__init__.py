"""The fault suite (issue 10): one module per kind of fault, each scenario printing its
figures and passing only on its criterion, every one ending with the shared after-check
(`invariants`). The fast size of each runs in `make test`; the full size is marked `soak`
and runs in `make soak`.

`tap` records every readings batch the broker delivers, `invariants` is the after-check,
`rig` builds a chain of emulators, gateways and nodes with both. May import the whole
project and `tests.support`.
"""
