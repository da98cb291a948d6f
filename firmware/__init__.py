# meterledger meter-adapter firmware (MicroPython, RP2040). Deployed to the board as the
# package /firmware; board.py is the only module that touches hardware. The host-only
# emulator in firmware/emulator/ runs these same modules on CPython.

# The firmware's version, as `mlg-flash board` reads it back from a board: the project's
# version (tests/firmware/test_flash_board.py keeps the two equal).
VERSION = "0.1.0"
