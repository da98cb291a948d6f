# The firmware's Modbus slave against the shared vectors (tests/vectors/modbus/*.json):
# every answer byte for byte, no answer where none is due.
import json

import check

from firmware.adapter import Adapter
from firmware.modbus_rtu import Slave
from firmware.registers import RegisterBank


def run(suite, slave):
    for case in suite["cases"]:
        answer = slave.handle(bytes.fromhex(case["request"]))
        got = bytes(answer).hex() if answer is not None else ""
        check.eq(got, case["response"], suite["name"] + ": " + case["name"])
    return len(suite["cases"])


def load(name):
    with open(name) as f:
        suite = json.load(f)
    suite["name"] = name
    return suite


suite = load("slave.json")
bank_spec = suite["bank"]
bank = RegisterBank(len(bank_spec["input"]), len(bank_spec["holding"]), len(bank_spec["coils"]))
for i, word in enumerate(bank_spec["input"]):
    bank.input[2 * i] = word >> 8
    bank.input[2 * i + 1] = word & 0xFF
for i, word in enumerate(bank_spec["holding"]):
    bank.set_holding(i, word)
for i, bit in enumerate(bank_spec["coils"]):
    bank.coils[i] = bit
count = run(suite, Slave(suite["unit"], bank))

suite = load("adapter.json")
adapter = Adapter(check.fresh_dir("adapter-state"), lambda: 0)
count += run(suite, Slave(suite["unit"], adapter))
check.done("vectors", count)
