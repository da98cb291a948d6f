"""One Modbus line (RS-485 serial, or Modbus TCP) and the one client that owns it.

Every transaction on a bus goes through one `ModbusBus`, one at a time (pymodbus,
synchronous). pymodbus's own retries are off: the scheduler (`poll.py`) retries within a
per-slot budget. A configurable pause separates transactions to different unit ids (some
meters need the line quiet a while after another device's answer). A serial adapter that
was unplugged is reopened on the next transaction; a port that stays open but answers
nothing for `reopen_after` transactions in a row is closed and opened again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from gateway.config import BusConfig
from gateway.errors import ExceptionResponseError, NoAnswerError, PortError

log = logging.getLogger("mlg.gateway.bus")


class ModbusBus:
    """A Modbus line; `read`, `write_coil` and `write_register` are serialised."""

    def __init__(self, cfg: BusConfig) -> None:
        self.cfg = cfg
        self._client: ModbusSerialClient | ModbusTcpClient
        if cfg.host is not None:
            self._client = ModbusTcpClient(
                cfg.host, port=cfg.tcp_port, timeout=cfg.timeout_s, retries=0
            )
        else:
            self._client = ModbusSerialClient(
                port=cfg.port,
                baudrate=cfg.baud,
                bytesize=8,
                parity=cfg.parity,
                stopbits=cfg.stopbits,
                timeout=cfg.timeout_s,
                retries=0,
            )
        self._lock = threading.Lock()
        self._last_unit: int | None = None
        self._silent = 0  # transactions in a row without an answer
        self.reopens = 0

    @property
    def where(self) -> str:
        return f"{self.cfg.host}:{self.cfg.tcp_port}" if self.cfg.host else self.cfg.port

    def read(self, unit: int, table: str, address: int, count: int) -> list[int]:
        """`count` registers at `address` of `unit`'s input (FC 04) or holding (FC 03) table."""
        fn = (
            self._client.read_input_registers
            if table == "input"
            else self._client.read_holding_registers
        )
        rr = self._transact(unit, lambda: fn(address, count=count, device_id=unit))
        words = list(rr.registers)
        if len(words) != count:  # a garbled answer whose CRC happens to hold
            raise NoAnswerError(
                f"bus {self.cfg.name} unit {unit}: {len(words)} registers in the answer to a"
                f" read of {count} at {address}"
            )
        return words

    def write_coil(self, unit: int, address: int, on: bool) -> None:
        """Set coil `address` of `unit` (FC 05)."""
        self._transact(unit, lambda: self._client.write_coil(address, on, device_id=unit))

    def write_register(self, unit: int, address: int, value: int) -> None:
        """Write holding register `address` of `unit` (FC 06)."""
        self._transact(unit, lambda: self._client.write_register(address, value, device_id=unit))

    def _transact(self, unit: int, call: Callable[[], Any]) -> Any:
        with self._lock:
            if not self._client.connected and not self._client.connect():
                raise PortError(f"bus {self.cfg.name}: cannot open {self.where}")
            if self._last_unit not in (None, unit) and self.cfg.unit_pause_s > 0:
                time.sleep(self.cfg.unit_pause_s)  # real time: the line's physics
            self._last_unit = unit
            try:
                rr = call()
            except ConnectionException as exc:
                self._close()
                raise PortError(f"bus {self.cfg.name}: {self.where} lost: {exc}") from None
            except ModbusIOException:
                self._no_answer()
                raise NoAnswerError(
                    f"bus {self.cfg.name} unit {unit}: no answer within {self.cfg.timeout_s} s"
                ) from None
            except ModbusException as exc:
                self._no_answer()
                raise NoAnswerError(f"bus {self.cfg.name} unit {unit}: {exc}") from None
            self._silent = 0
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0))
            raise ExceptionResponseError(
                f"bus {self.cfg.name} unit {unit}: exception response {code}", code
            )
        return rr

    def _no_answer(self) -> None:
        self._silent += 1
        if self._silent >= self.cfg.reopen_after:
            log.warning(
                "bus %s: %d transactions without an answer; reopening %s",
                self.cfg.name,
                self._silent,
                self.where,
            )
            self._close()
            self._silent = 0
            self.reopens += 1

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
