"""Gateway exceptions, under the project's root `MeterledgerError`."""

from ledger_node.errors import ConfigError, MeterledgerError

__all__ = ["BusError", "ConfigError", "GatewayError", "MeterledgerError"]


class GatewayError(MeterledgerError):
    """A gateway failure the operator can act on."""


class BusError(GatewayError):
    """A Modbus transaction failed: no answer, a bad frame or an exception response."""
