"""Gateway exceptions, under the project's root `MeterledgerError`."""

from ledger_node.shared.errors import ConfigError, MeterledgerError

__all__ = [
    "BusError",
    "ConfigError",
    "ExceptionResponseError",
    "GatewayError",
    "MeterledgerError",
    "NoAnswerError",
    "OutboxFullError",
    "PortError",
]


class GatewayError(MeterledgerError):
    """A gateway failure the operator can act on."""


class BusError(GatewayError):
    """A Modbus transaction failed: no answer, a bad frame or an exception response."""


class PortError(BusError):
    """The serial port or TCP connection cannot be opened (adapter unplugged, host down)."""


class NoAnswerError(BusError):
    """No valid answer within the timeout (dead meter, wrong unit id, CRC errors)."""


class ExceptionResponseError(BusError):
    """The device answered with a Modbus exception `code` (2 illegal address, 3 illegal
    value, 4 device failure...)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class OutboxFullError(GatewayError):
    """The outbox holds its configured maximum of bytes: a new batch is refused, not stored."""
