"""meterledger ledger node: verify, log, decrypt and total the readings of its privacy
groups; and the protocol and shared layer that gateways use too.

Layers, each importing only those below it (`lint-imports` checks them)::

    localnet     the demo and lab networks: the one layer that imports gateway, firmware
    interfaces   mlg-node CLI, JSON API, status, verify, authoring requests
    network      the running node: ingest, witnesses, anti-entropy, marks, genesis, config
    contract     the DR contract (dr-1) and its settlement on the node's data
    ledger       admission, the rules of each fact type, registry, groups, Merkle log
    wire         the protocol: envelope, messages, Pedersen commitments, MQTT topics
    shared       errors, ids, keys, clock, TOML config, MQTT settings, CLI helpers

`gateway` and `firmware.emulator` import `wire` and `shared` only.
"""
