# S0 pulse counting with simulated interrupts: each edge is what the board's pin IRQ
# would report (tick ms, level). Energy exact, debounce, power from the pulse interval.
import struct

import check

from firmware import ticks
from firmware.adapter import Adapter
from firmware.pulses import HIGH, LOW, PulseCounter

count = 0


def pulse(counter, t, width=40, bounce=False):
    """One S0 pulse starting at tick `t`: low for `width` ms, with contact bounce on both
    edges when `bounce` (1 ms spikes for 4 ms after each edge)."""
    counter.edge(t, LOW)
    if bounce:
        for i in range(1, 5):
            counter.edge(ticks.add(t, i), HIGH if i % 2 else LOW)
    end = ticks.add(t, width)
    counter.edge(end, HIGH)
    if bounce:
        counter.edge(ticks.add(end, 1), LOW)
        counter.edge(ticks.add(end, 2), HIGH)


# Clean pulses count one each, on the rising edge that ends them.
c = PulseCounter(10, 0)
for k in range(100):
    pulse(c, 1000 + 500 * k)
check.eq(c.pulses, 100, "clean pulses")
check.eq(c.bounces, 0, "clean pulses have no bounces")
count += 1

# Bouncing contacts: still one count per pulse, every spike rejected and counted.
c = PulseCounter(10, 0)
for k in range(50):
    pulse(c, 1000 + 300 * k, bounce=True)
check.eq(c.pulses, 50, "bouncing pulses")
check.eq(c.bounces, 50 * 6, "spikes rejected")
check.eq(c.last_pulse_ms, 1000 + 300 * 49 + 4, "a pulse starts when the level settles")
count += 1

# A spike shorter than the debounce is noise, not a pulse.
c = PulseCounter(10, 0)
for k in range(20):
    t = 1000 + 100 * k
    c.edge(t, LOW)
    c.edge(t + 3, HIGH)
c.poll(10_000)
check.eq(c.pulses, 0, "3 ms spikes with a 10 ms debounce")
check.eq(c.bounces, 20, "spikes counted")
count += 1

# A pulse still low is counted by the main loop's poll once it has lasted the debounce,
# and not again when it ends.
c = PulseCounter(10, 0)
c.edge(1000, LOW)
c.poll(1005)
check.eq(c.pulses, 0, "5 ms into the pulse")
c.poll(1010)
check.eq(c.pulses, 1, "10 ms into the pulse")
c.edge(1040, HIGH)
c.poll(2000)
check.eq(c.pulses, 1, "the pulse ended")
count += 1

# Power from the pulse interval: 1 Wh every 1.8 s is 2000 W; it decays as the time
# since the last pulse grows past the interval, and reads 0 after an hour.
c = PulseCounter(10, 0)
for k in range(5):
    pulse(c, 1000 + 1800 * k)
last = 1000 + 1800 * 4
check.eq(c.interval_ms, 1800, "interval")
check.eq(c.power_w(last + 100, 1000), 2000.0, "power at 1 Wh per 1.8 s")
check.eq(c.power_w(last + 3600, 1000), 1000.0, "power bound 3.6 s after the last pulse")
c.poll(last + 3_600_001)
check.eq(c.power_w(last + 3_600_001, 1000), 0.0, "power after an hour without pulses")
check.eq(PulseCounter(10, 0).power_w(5000, 1000), 0.0, "power before any pulse")
count += 1

# Across the wrap of the tick counter (2**30 ms, 12.4 days).
start = ticks.PERIOD - 1000
c = PulseCounter(10, start)
for k in range(6):
    pulse(c, ticks.add(start, 400 * k))
check.eq(c.pulses, 6, "pulses across the tick wrap")
check.eq(c.interval_ms, 400, "interval across the tick wrap")
count += 1

# Energy: exact integer µWh, 1000 and 800 pulses per kWh, through the adapter's registers.
now = [0]
adapter = Adapter(check.fresh_dir("pulse-state"), lambda: now[0])
for k in range(1234):
    pulse(adapter.counter, 100 + 200 * k, bounce=(k % 3 == 0))
now[0] = 100 + 200 * 1234
adapter.service(now[0])
check.eq(adapter.energy_uwh(), 1234 * 1_000_000, "1234 pulses at 1000/kWh")
adapter.refresh()
f32 = struct.unpack(">f", struct.pack(">f", 1.234))[0]
check.eq(adapter.get_float(0x0048), f32, "import energy register, kWh float32")
check.eq(adapter.get_holding(6), 1234, "energy holding register, Wh")
adapter.check_holding(3, [800])
adapter.set_holding(3, 800)
adapter.written(1, 3, 1)
for k in range(1000):
    pulse(adapter.counter, now[0] + 200 * (k + 1))
now[0] += 200 * 1001
adapter.service(now[0])
check.eq(adapter.energy_uwh(), 1234 * 1_000_000 + 1000 * 1_250_000, "then 1000 at 800/kWh")
count += 1

check.done("pulses", count)
