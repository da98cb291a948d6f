# Root main.py of the Pico: MicroPython runs it at boot. The firmware is the package
# /firmware, the pin map /pins.json, the counter and settings live in /state.
from firmware.main import run

run()
