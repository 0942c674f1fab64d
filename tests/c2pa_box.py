"""The C2PA manifest box of an MP4, masked: what two signings of the same dub may differ in.

c2pa-rs salts every assertion hash of a manifest with 16 random bytes it draws itself (no setting
turns that off), so two signings of identical media differ inside the manifest box, and only
there: its size and place, and so every other byte of the file, stay the same.
"""

from __future__ import annotations

import struct

C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")  # the uuid box type C2PA uses in BMFF


def without_manifest(data: bytes) -> tuple[bytes, int]:
    """``data`` with the payload of every top-level C2PA ``uuid`` box zeroed; and how many there were."""
    out, pos, found = bytearray(data), 0, 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            raise ValueError(f"malformed box at byte {pos}")
        if kind == b"uuid" and data[pos + header : pos + header + 16] == C2PA_UUID:
            out[pos + header + 16 : pos + size] = bytes(size - header - 16)
            found += 1
        pos += size
    return bytes(out), found
