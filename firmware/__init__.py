# meterledger meter-adapter firmware (MicroPython, RP2040). Deployed to the board as the
# package /firmware; board.py is the only module that touches hardware. The host-only
# emulator in firmware/emulator/ runs these same modules on CPython.
