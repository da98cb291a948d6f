# Frozen modules of the Pico adapter's firmware image, in MicroPython's manifest format.
# From MicroPython's ports/rp2:
#   make BOARD=RPI_PICO FROZEN_MANIFEST=/path/to/meterledger/hw/pico-adapter/manifest.py
# Relative paths are from this file's folder. tests/firmware/test_firmware_image.py checks
# that the image freezes every board module and nothing else of ours.

# The port's own frozen modules: its _boot.py mounts the flash (/pins.json, /state).
include("$(PORT_DIR)/boards/manifest.py")

# The board code as the package `firmware`, without the host-only firmware/emulator/.
# The root main.py stays a file on the flash: a frozen main.py would run instead of it,
# and the file is what a technician replaces or removes to stop the adapter at boot.
package(
    "firmware",
    files=[
        "__init__.py",
        "adapter.py",
        "board.py",
        "compat.py",
        "counter_store.py",
        "crc.py",
        "main.py",
        "modbus_rtu.py",
        "pinmap.py",
        "pulses.py",
        "records.py",
        "registers.py",
        "settings.py",
        "ticks.py",
    ],
    base_path="../..",
)
