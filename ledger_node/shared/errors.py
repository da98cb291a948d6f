"""The root of every meterledger exception; the CLIs turn these into messages and exit codes."""


class MeterledgerError(Exception):
    """Something the user can act on; the message says what."""


class KeyFileError(MeterledgerError):
    """A key file is missing, malformed, too open, or would be overwritten."""


class ConfigError(MeterledgerError):
    """A configuration file is missing a key or has a bad value; the message names the key."""
