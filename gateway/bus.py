"""One Modbus RTU line and the one client that owns it (pymodbus, synchronous)."""

from __future__ import annotations

import logging
import threading

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException

from gateway.config import BusConfig
from gateway.errors import BusError
from gateway.meters import Block, MeterModel, plan_blocks

log = logging.getLogger("mlg.gateway.bus")


class ModbusBus:
    """A serial line; every transaction on it goes through `read`, one at a time."""

    def __init__(self, cfg: BusConfig) -> None:
        self.cfg = cfg
        self._client = ModbusSerialClient(
            port=cfg.port,
            baudrate=cfg.baud,
            bytesize=8,
            parity=cfg.parity,
            stopbits=cfg.stopbits,
            timeout=cfg.timeout_s,
            retries=cfg.retries,
        )
        self._lock = threading.Lock()

    def read(self, unit: int, table: str, address: int, count: int) -> list[int]:
        """Read `count` registers at `address` from `unit`'s input or holding table."""
        with self._lock:
            if not self._client.connected and not self._client.connect():
                raise BusError(f"bus {self.cfg.name}: cannot open {self.cfg.port}")
            try:
                if table == "input":
                    rr = self._client.read_input_registers(address, count=count, device_id=unit)
                else:
                    rr = self._client.read_holding_registers(address, count=count, device_id=unit)
            except ModbusException as exc:
                raise BusError(f"bus {self.cfg.name} unit {unit}: {exc}") from None
        if rr.isError():
            code = getattr(rr, "exception_code", "?")
            raise BusError(f"bus {self.cfg.name} unit {unit}: exception response {code}")
        return list(rr.registers)

    def close(self) -> None:
        with self._lock:
            self._client.close()


def read_model(
    bus: ModbusBus, unit: int, model: MeterModel, blocks: list[Block] | None = None
) -> dict[str, float]:
    """Read every register of `model` from `unit`, in planned blocks; name → value."""
    values: dict[str, float] = {}
    for block in blocks if blocks is not None else plan_blocks(model.registers, model.max_block):
        words = bus.read(unit, model.table, block.address, block.count)
        for reg in block.registers:
            offset = reg.address - block.address
            values[reg.name] = reg.decode(words[offset : offset + reg.words], model.big_word_first)
    return values
