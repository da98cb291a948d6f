# The counter on flash across simulated reboots (a new Adapter over the same directory):
# it never goes backwards, writes are bounded, a corrupt or missing copy is detected and
# reported in the status register, and a failed write is retried.
import os

import check

from firmware import counter_store, records, settings
from firmware.adapter import MARGIN_PULSES, RESERVE_PULSES, Adapter
from firmware.pulses import HIGH, LOW

D = "store-state"
UWH = 1_000_000  # one pulse at 1000 pulses/kWh
count = 0
now = [0]


def clock():
    return now[0]


def boot():
    return Adapter(D, clock)


def pulses(adapter, n):
    for _ in range(n):
        now[0] += 250
        adapter.counter.edge(now[0], LOW)
        adapter.counter.edge(now[0] + 40, HIGH)
        now[0] += 40
        adapter.service(now[0])


def newest_copy():
    seqs = []
    for i in (0, 1):
        rec = records.unseal(records.read("%s/counter%d.dat" % (D, i)) or b"", "MLC1", 3)
        seqs.append(rec[0] if rec else -1)
    return 0 if seqs[0] > seqs[1] else 1


def corrupt(path, how):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if how == "flip":
        data[6] ^= 0x04
    else:  # torn write
        data = data[: len(data) // 2]
    with open(path, "wb") as f:
        f.write(data)


# First boot: nothing on flash, reported; one write stores the first ceiling.
check.fresh_dir(D)
a = boot()
check.eq(a.status(), counter_store.MISSING, "first boot status")
check.eq(a.energy_uwh(), 0, "first boot energy")
check.eq(a.store.writes, 1, "first boot writes")
count += 1

# Writes are bounded: one per (reserve - margin) pulses, whatever the read rate.
pulses(a, 360)
for _ in range(1000):
    a.refresh()
per_write = RESERVE_PULSES - MARGIN_PULSES
check.true(a.store.writes <= 1 + 360 // per_write + 1, "writes for 360 pulses: %d" % a.store.writes)
check.true(a.store.writes >= 360 // RESERVE_PULSES, "writes keep up: %d" % a.store.writes)
check.true(a.store.ceiling >= a.energy_uwh(), "the stored ceiling bounds the count")
count += 1

# Power loss: resume from the ceiling, never below the count, at most one reserve above.
before = a.energy_uwh()
a = boot()
check.true(before <= a.energy_uwh() <= before + RESERVE_PULSES * UWH, "resume after power loss")
check.eq(a.status(), counter_store.RESUMED, "status after power loss")
count += 1

# A clean stop stores the exact count.
pulses(a, 7)
before = a.energy_uwh()
a.shutdown()
a = boot()
check.eq(a.energy_uwh(), before, "resume after a clean stop")
check.eq(a.status(), 0, "status after a clean stop")
count += 1

# Many reboots with counting in between: the reported energy never decreases.
seen = a.energy_uwh()
for k in range(25):
    pulses(a, k % 5)
    check.true(a.energy_uwh() >= seen, "counting")
    seen = a.energy_uwh()
    a = boot()
    check.true(a.energy_uwh() >= seen, "reboot %d went backwards" % k)
    seen = a.energy_uwh()
count += 1

# A corrupt copy (bit flip or torn write, newest or older) or a missing one: detected,
# reported, the bad copy kept for inspection, and the count still never backwards.
for what in ("flip newest", "flip older", "torn newest", "delete newest", "delete older"):
    pulses(a, 3)
    seen = a.energy_uwh()
    newest = newest_copy()
    which = newest if "newest" in what else 1 - newest
    path = "%s/counter%d.dat" % (D, which)
    if what.startswith("delete"):
        os.remove(path)
        want = counter_store.MISSING
    else:
        corrupt(path, what.split()[0])
        want = counter_store.CORRUPT
    a = boot()
    check.true(a.energy_uwh() >= seen, what + ": went backwards")
    check.true(a.energy_uwh() <= seen + 2 * RESERVE_PULSES * UWH, what + ": too far ahead")
    check.eq(a.status() & (counter_store.MISSING | counter_store.CORRUPT), want, what)
    if want == counter_store.CORRUPT:
        check.true(records.exists(path + ".bad"), what + ": bad copy kept")
    seen = a.energy_uwh()
    a = boot()  # and the next boot is clean again
    check.true(a.energy_uwh() >= seen, what + ": next boot went backwards")
    check.eq(a.status() & (counter_store.MISSING | counter_store.CORRUPT), 0, what + " then")
    count += 1

# A write torn before its rename leaves counterN.dat.new behind: ignored.
seen = a.energy_uwh()
with open(D + "/counter0.dat.new", "wb") as f:
    f.write(b"MLC1,99")
a = boot()
check.true(a.energy_uwh() >= seen, "leftover .new file")
check.eq(a.status() & counter_store.CORRUPT, 0, "leftover .new file is not corruption")
count += 1

# Both copies corrupt: the count is lost, and the status register says so.
for i in (0, 1):
    corrupt("%s/counter%d.dat" % (D, i), "flip")
a = boot()
check.eq(a.status() & counter_store.CORRUPT, counter_store.CORRUPT, "both copies corrupt")
check.eq(a.energy_uwh(), 0, "nothing valid to resume from")
count += 1

# The flash refuses a write: status bit set, retried after RETRY_MS, cleared on success.
check.fresh_dir(D)
a = boot()
for name in os.listdir(D):
    os.remove(D + "/" + name)
os.rmdir(D)
pulses(a, RESERVE_PULSES)
check.eq(a.status() & counter_store.WRITE_FAILED, counter_store.WRITE_FAILED, "write failed")
writes = a.store.writes
os.mkdir(D)
pulses(a, 1)
check.eq(a.store.writes, writes, "no retry before RETRY_MS")
now[0] += counter_store.RETRY_MS
a.service(now[0])
check.eq(a.status() & counter_store.WRITE_FAILED, 0, "retried and cleared")
check.true(a.store.ceiling >= a.energy_uwh(), "ceiling caught up")
count += 1

# Settings survive a reboot; a corrupt settings file means defaults, reported.
check.fresh_dir(D)
a = boot()
a.set_holding(3, 800)
a.written(1, 3, 1)
a = boot()
check.eq(a.settings.get("pulses_per_kwh"), 800, "pulse value after reboot")
corrupt(D + "/settings.dat", "flip")
a = boot()
check.eq(a.settings.get("pulses_per_kwh"), 1000, "defaults after a corrupt settings file")
check.eq(a.status() & settings.CORRUPT, settings.CORRUPT, "settings corrupt reported")
count += 1

check.done("store", count)
