"""The board code (under MicroPython and CPython), the adapter's register map, and the meter
emulator."""
