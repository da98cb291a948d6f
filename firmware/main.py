"""The adapter's main loop: frames in, answers out, the S0 count kept on flash.

`Runner` holds the logic and takes the board as an argument, so the same loop runs on
the Pico (`run()`, started by the root `main.py`) and in tests with a stand-in board.
"""

import os

from .adapter import Adapter
from .compat import const
from .modbus_rtu import Framer, Slave, frame_gap_s

_PINS = const("/pins.json")
_STATE_DIR = const("/state")


def gap_us(baud: int, parity: int) -> int:
    """The end-of-frame silence, µs, for 8 data bits, `parity` (0 none) and 1 stop bit."""
    return int(frame_gap_s(baud, 11 if parity else 10) * 1_000_000)


class Runner:
    def __init__(self, board, state_dir: str) -> None:  # noqa: ANN001 (duck-typed board)
        self.board = board
        self.adapter = Adapter(state_dir, board.ticks_ms, board.relay)
        board.watch_s0(self.adapter.counter.edge)
        self.slave = Slave(1, self.adapter)
        self.framer = Framer(0)
        self.open_line()

    def open_line(self) -> None:
        """Apply the stored unit id, baud rate and parity."""
        settings = self.adapter.settings
        baud, parity = settings.get("baud"), settings.get("parity")
        self.board.open_line(baud, parity)
        self.framer = Framer(gap_us(baud, parity))
        self.slave.unit_id = settings.get("unit")

    def step(self) -> None:
        """One turn of the loop: take received bytes, answer a complete frame, keep the
        counter stored. Never blocks longer than one answer's transmission."""
        board = self.board
        now = board.ticks_us()
        data = board.receive()
        frame = self.framer.feed(data, now) if data else self.framer.poll(now)
        if frame is not None:
            answer = self.slave.handle(frame)
            if answer is not None:
                board.send(answer)
            if self.adapter.line_changed:  # after the answer, at the old settings
                self.adapter.line_changed = False
                self.open_line()
        self.adapter.service(board.ticks_ms())
        board.feed_watchdog()


def run(pins: str = _PINS, state_dir: str = _STATE_DIR) -> None:
    """Run the adapter until stopped (Ctrl-C over USB stores the exact count first)."""
    from . import board, pinmap  # noqa: PLC0415 (only the board has `machine`)

    try:
        os.mkdir(state_dir)
    except OSError:
        pass  # exists
    hw = board.Board(pinmap.load(pins))
    runner = Runner(hw, state_dir)
    hw.start_watchdog()
    try:
        while True:
            runner.step()
    finally:
        runner.adapter.shutdown()
