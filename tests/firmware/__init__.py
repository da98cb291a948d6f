"""The board code (under MicroPython and CPython) and its frozen image, the adapter's
register map, and the meter emulator."""
