"""Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF), table-driven."""


def _make_table() -> tuple:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16(data: bytes | bytearray | memoryview, end: int = -1) -> int:
    """The CRC of `data[:end]` (all of it when end is -1) as an int; low byte goes first."""
    if end < 0:
        end = len(data)
    crc = 0xFFFF
    table = _TABLE
    for i in range(end):
        crc = (crc >> 8) ^ table[(crc ^ data[i]) & 0xFF]
    return crc


def check(frame: bytes | bytearray) -> bool:
    """True when the frame's last two bytes are the CRC of the rest."""
    n = len(frame)
    if n < 4:
        return False
    crc = crc16(frame, n - 2)
    return frame[n - 2] == (crc & 0xFF) and frame[n - 1] == (crc >> 8)
