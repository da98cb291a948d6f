# The adapter's main loop (firmware.main.Runner) on a stand-in board: frames cut by the
# silence after them, answers sent, unit id and line settings applied after the answer,
# the relay switched, S0 edges counted, the watchdog fed.
import struct

import check

from firmware import ticks
from firmware.crc import crc16
from firmware.main import Runner, gap_us
from firmware.pulses import HIGH, LOW

count = 0


def crc_frame(body):
    c = crc16(body)
    return bytes(body) + bytes([c & 0xFF, c >> 8])


class StandInBoard:
    """The board's interface without hardware (the Pico cannot run here): received bytes
    are queued by the test, sent frames recorded with the line settings they went out at."""

    def __init__(self):
        self.us = 0
        self.rx = []
        self.sent = []
        self.line = None
        self.relay_on = False
        self.edge = None
        self.fed = 0

    def ticks_ms(self):
        return ticks.wrap(self.us // 1000)

    def ticks_us(self):
        return ticks.wrap(self.us)

    def open_line(self, baud, parity):
        self.line = (baud, parity)

    def receive(self):
        return self.rx.pop(0) if self.rx else None

    def send(self, frame):
        self.sent.append((bytes(frame), self.line))

    def relay(self, on):
        self.relay_on = on

    def watch_s0(self, edge):
        self.edge = edge

    def feed_watchdog(self):
        self.fed += 1


def exchange(runner, board, request, chunks=1, pause_us=0):
    """Deliver `request` in `chunks` pieces `pause_us` apart, then let the line go quiet;
    return the frames sent in answer."""
    before = len(board.sent)
    size = (len(request) + chunks - 1) // chunks
    for i in range(0, len(request), size):
        board.rx.append(request[i : i + size])
        runner.step()
        board.us += pause_us
        runner.step()
    for _ in range(4):
        board.us += 2000
        runner.step()
    return board.sent[before:]


board = StandInBoard()
runner = Runner(board, check.fresh_dir("runner-state"))
check.eq(board.line, (9600, 0), "line opened at the stored settings")
gap = gap_us(9600, 0)
check.eq(gap, 3645, "3.5 characters of 10 bits at 9600 baud, µs")
read_energy = crc_frame(bytes([1, 4, 0, 0x48, 0, 2]))

# A request arriving in pieces closer than the gap is one frame, answered once quiet.
sent = exchange(runner, board, read_energy, chunks=3, pause_us=gap // 2)
check.eq(len(sent), 1, "one answer to a request in 3 pieces")
check.eq(sent[0][0][:3], bytes([1, 4, 4]), "answer header")
count += 1

# Pieces further apart than the gap are separate (broken) frames: no answer.
errors = runner.slave.crc_errors
sent = exchange(runner, board, read_energy, chunks=2, pause_us=gap + 1000)
check.eq(len(sent), 0, "no answer to a request split by silence")
check.eq(runner.slave.crc_errors, errors + 2, "two fragments with bad CRCs")
count += 1

# S0 edges through the board's interrupt hook are counted and read over Modbus.
for _ in range(5):
    t = board.ticks_ms() + 1000
    board.edge(t, LOW)
    board.edge(t + 40, HIGH)
    board.us = (t + 100) * 1000
    runner.step()
sent = exchange(runner, board, read_energy)
value = struct.unpack(">f", sent[0][0][3:7])[0]
check.eq(value, struct.unpack(">f", struct.pack(">f", 0.005))[0], "5 pulses = 0.005 kWh")
count += 1

# DR relay on coil 0.
on = crc_frame(bytes([1, 5, 0, 0, 0xFF, 0]))
check.eq(exchange(runner, board, on)[0][0], on, "write coil echo")
check.true(board.relay_on, "relay switched on")
count += 1

# A new unit id and baud rate: the answer goes out at the old settings, then they apply.
sent = exchange(runner, board, crc_frame(bytes([1, 0x10, 0, 0, 0, 2, 4, 0, 5, 0, 192])))
check.eq(sent[0][1], (9600, 0), "the answer went out at the old baud rate")
check.eq(board.line, (19200, 0), "the line reopened at the new baud rate")
check.eq(runner.framer.gap_us, gap_us(19200, 0), "frame gap follows the baud rate")
check.eq(runner.slave.unit_id, 5, "new unit id")
check.eq(exchange(runner, board, read_energy), [], "the old unit id is not answered")
sent = exchange(runner, board, crc_frame(bytes([5, 4, 0, 0x48, 0, 2])))
check.eq(len(sent), 1, "the new unit id is answered")
count += 1

check.true(board.fed > 10, "watchdog fed every step")

# A deliberate stop stores the exact count; the settings are kept.
energy = runner.adapter.energy_uwh()
runner.adapter.shutdown()
runner = Runner(StandInBoard(), "runner-state")
check.eq(runner.adapter.energy_uwh(), energy, "exact count after a clean stop")
check.eq(runner.slave.unit_id, 5, "unit id kept")
check.eq(runner.board.line, (19200, 0), "baud rate kept")
count += 1

check.done("runner", count)
