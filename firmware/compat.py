"""`const` for the board modules, on MicroPython and on CPython alike.

MicroPython's compiler recognises `NAME = const(value)` by the bare name `const`, however
it was bound: it puts the value in the bytecode wherever the module uses NAME, and a NAME
that starts with an underscore is not stored at all (it takes no RAM). The function below
is then never called on the board. CPython (the emulator, the host tests), which has no
`micropython` module, calls it: there it is the identity. Never annotate such a NAME
(MicroPython before 1.29 does not fold `NAME: int = const(...)`), and never spell it
`micropython.const` (not folded either).
"""

TYPE_CHECKING = False  # type checkers take it as true; MicroPython has no typing module
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")


def const(value: "T") -> "T":
    """`value` itself."""
    return value
