"""What several test areas and the benchmarks use: simulated ledger parties (`sim`), the
emulator in process (`emulated`) and the gateway's test parts (`gateway`)."""
