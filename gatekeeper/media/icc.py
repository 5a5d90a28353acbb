"""ICC profiles: recognise the standard RGB spaces by their colorimetry and rebuild them neutrally.

A profile is free-form: its description, copyright, device and creator fields can carry any text
(a person's name, a serial number). A clean copy therefore never carries the source's profile.
When the source's matrix/TRC colorimetry is, within a tolerance, sRGB, Display P3 or Adobe RGB
(1998), the clean copy carries our own rebuilt profile for that space instead: the same colours,
a fixed description, neutral header fields. Any other profile means the pixels must be converted
to sRGB (see `colour`). The description is never read to decide anything: it is the part a
hostile or careless writer controls.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import lru_cache

from gatekeeper.media.base import MalformedError

_HEADER = 128
_D50 = (0.9642, 1.0, 0.8249)
_D65 = (0.95047, 1.0, 1.08883)
# Component tolerance for XYZ values (s15Fixed16 rounding and vendor rounding stay far below it;
# the nearest other standard primaries differ by more than 0.05).
_XYZ_TOLERANCE = 0.005
# Largest difference in linear light allowed between a TRC and the standard curve; gamma 2.2
# differs from the sRGB curve by 0.0036 at mid-grey, so it is not mistaken for sRGB.
_TRC_TOLERANCE = 0.002
_TRC_SAMPLES = 64
# Tags that make colour-managing software prefer a lookup table over the matrix: the matrix alone
# would not show what the source meant, so such a profile is never taken for a standard one.
_LUT_TAGS = frozenset({b"A2B0", b"A2B1", b"A2B2", b"B2A0", b"B2A1", b"B2A2", b"D2B0", b"D2B1", b"D2B2"})
_BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))
_BRADFORD_INV = (
    (0.9869929, -0.1470543, 0.1599627),
    (0.4323053, 0.5183603, 0.0492912),
    (-0.0085287, 0.0400428, 0.9684867),
)

Vector = tuple[float, float, float]
Matrix = tuple[Vector, Vector, Vector]


def _mul(m: Matrix, v: Vector) -> Vector:
    return (
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    )


def _solve(m: Matrix, v: Vector) -> Vector:
    """x with m @ x = v (Cramer's rule; 3x3 only)."""

    def det(a: Matrix) -> float:
        return (
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        )

    d = det(m)
    out = []
    for col in range(3):
        rows = [list(row) for row in m]
        for r in range(3):
            rows[r][col] = v[r]
        out.append(det((tuple(rows[0]), tuple(rows[1]), tuple(rows[2]))) / d)  # type: ignore[arg-type]
    return (out[0], out[1], out[2])


def _d50_primaries(xy: tuple[tuple[float, float], ...]) -> tuple[Vector, Vector, Vector]:
    """Columns of the RGB->XYZ matrix for D65-white primaries, Bradford-adapted to D50 (as ICC wants)."""
    xyz = [(x / y, 1.0, (1 - x - y) / y) for x, y in xy]
    m: Matrix = tuple(tuple(xyz[c][r] for c in range(3)) for r in range(3))  # type: ignore[assignment]
    scale = _solve(m, _D65)
    src, dst = _mul(_BRADFORD, _D65), _mul(_BRADFORD, _D50)
    columns = []
    for c in range(3):
        primary = (xyz[c][0] * scale[c], xyz[c][1] * scale[c], xyz[c][2] * scale[c])
        cone = _mul(_BRADFORD, primary)
        adapted = (cone[0] * dst[0] / src[0], cone[1] * dst[1] / src[1], cone[2] * dst[2] / src[2])
        columns.append(_mul(_BRADFORD_INV, adapted))
    return columns[0], columns[1], columns[2]


def _srgb_curve(x: float) -> float:
    return x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4


_ADOBE_GAMMA = 563 / 256  # 2.19921875, exactly representable as the u8Fixed8 of a 'curv' tag


def _adobe_curve(x: float) -> float:
    return float(x**_ADOBE_GAMMA)


class Standard:
    """One standard RGB space: how it is recognised and the neutral profile written for it."""

    def __init__(
        self,
        name: str,
        description: str,
        primaries: tuple[tuple[float, float], ...],
        curve: Callable[[float], float],
    ) -> None:
        self.name = name
        self.description = description
        self.primaries = _d50_primaries(primaries)
        self.curve = curve
        self.profile = _build_profile(self)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(v: Vector) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + b"".join(_s15(c) for c in v)


def _curve_tag(standard: Standard) -> bytes:
    if standard.curve is _adobe_curve:
        return b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(_ADOBE_GAMMA * 256))
    table = [round(standard.curve(i / 1023) * 65535) for i in range(1024)]
    return b"curv\x00\x00\x00\x00" + struct.pack(f">I{len(table)}H", len(table), *table)


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\x00"
    # ICC v2 textDescriptionType: ASCII, then empty Unicode and ScriptCode parts (67 bytes fixed).
    return (
        b"desc\x00\x00\x00\x00" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\x00" * 8 + b"\x00" * 70
    )


def _build_profile(standard: Standard) -> bytes:
    """A version 2.1 display profile: description, white point, matrix and TRC; nothing else."""
    curve = _curve_tag(standard)
    elements = [
        (b"desc", _desc_tag(standard.description)),
        (b"wtpt", _xyz_tag(_D50)),
        (b"rXYZ", _xyz_tag(standard.primaries[0])),
        (b"gXYZ", _xyz_tag(standard.primaries[1])),
        (b"bXYZ", _xyz_tag(standard.primaries[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table_size = 4 + 12 * len(elements)
    offset = _HEADER + table_size
    table: list[bytes] = []
    body = b""
    placed: dict[bytes, int] = {}
    for sig, element in elements:
        if element not in placed:
            # Elements start on 4-byte boundaries; the three TRCs share one element, as is usual.
            body += b"\x00" * (-len(body) % 4)
            placed[element] = offset + len(body)
            body += element
        table.append(struct.pack(">4sII", sig, placed[element], len(element)))
    body += b"\x00" * (-len(body) % 4)
    size = _HEADER + table_size + len(body)
    header = (
        struct.pack(">I", size)
        + b"\x00" * 4  # preferred CMM: none
        + b"\x02\x10\x00\x00"  # version 2.1
        + b"mntrRGB XYZ "
        + b"\x00" * 12  # creation date: none, so nothing dates or fingerprints the source
        + b"acsp"
        + b"\x00" * 24  # platform, flags, manufacturer, model, attributes: neutral
        + b"\x00\x00\x00\x00"  # rendering intent: perceptual
        + b"".join(_s15(c) for c in _D50)
        + b"\x00" * 4  # creator: none
        + b"\x00" * 44  # profile id and reserved
    )
    assert len(header) == _HEADER
    return header + struct.pack(">I", len(elements)) + b"".join(table) + body


SRGB = Standard("srgb", "sRGB", ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), _srgb_curve)
DISPLAY_P3 = Standard(
    "display-p3", "Display P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), _srgb_curve
)
ADOBE_RGB = Standard(
    "adobe-rgb", "Adobe RGB (1998)", ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), _adobe_curve
)
STANDARDS: tuple[Standard, ...] = (SRGB, DISPLAY_P3, ADOBE_RGB)
REBUILT: frozenset[bytes] = frozenset(s.profile for s in STANDARDS)


def _tags(profile: bytes) -> dict[bytes, bytes]:
    if len(profile) < _HEADER + 4 or profile[36:40] != b"acsp":
        raise MalformedError("not an ICC profile")
    count = struct.unpack_from(">I", profile, _HEADER)[0]
    if count > 1000 or _HEADER + 4 + 12 * count > len(profile):
        raise MalformedError("ICC tag table runs past the end")
    tags = {}
    for i in range(count):
        sig, offset, size = struct.unpack_from(">4sII", profile, _HEADER + 4 + 12 * i)
        if offset + size > len(profile) or size < 8:
            raise MalformedError("ICC tag runs past the end")
        tags[sig] = profile[offset : offset + size]
    return tags


def _xyz(element: bytes) -> Vector:
    if not element.startswith(b"XYZ ") or len(element) < 20:
        raise MalformedError("ICC XYZ tag of the wrong type")
    x, y, z = struct.unpack_from(">3i", element, 8)
    return (x / 65536, y / 65536, z / 65536)


def _curve(element: bytes) -> Callable[[float], float]:
    """A TRC element ('curv' or 'para') as a function on 0..1; raises MalformedError."""
    kind = element[:4]
    if kind == b"curv":
        (n,) = struct.unpack_from(">I", element, 8)
        if len(element) < 12 + 2 * n:
            raise MalformedError("ICC curve table is truncated")
        if n == 0:
            return lambda x: x
        if n == 1:
            gamma = struct.unpack_from(">H", element, 12)[0] / 256
            return lambda x: float(x**gamma)
        table = [float(v) / 65535 for v in struct.unpack_from(f">{n}H", element, 12)]

        def interpolate(x: float) -> float:
            pos = x * (n - 1)
            i = min(int(pos), n - 2)
            return float(table[i] + (table[i + 1] - table[i]) * (pos - i))

        return interpolate
    if kind == b"para":
        (function,) = struct.unpack_from(">H", element, 8)
        counts = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
        if function not in counts or len(element) < 12 + 4 * counts[function]:
            raise MalformedError("ICC parametric curve is malformed")
        p = [v / 65536 for v in struct.unpack_from(f">{counts[function]}i", element, 12)]
        g, a, b, c, d, e, f = (p + [0.0] * 7)[:7]
        if function == 0:
            return lambda x: float(x**g)
        if function == 1:
            return lambda x: float((a * x + b) ** g) if a * x + b >= 0 else 0.0
        if function == 2:
            return lambda x: float((a * x + b) ** g) + c if a * x + b >= 0 else c
        if function == 3:
            return lambda x: float((a * x + b) ** g) if x >= d else c * x
        return lambda x: float((a * x + b) ** g) + e if x >= d else c * x + f
    raise MalformedError("ICC TRC of an unknown type")


def _close(a: Vector, b: Vector) -> bool:
    return all(abs(p - q) <= _XYZ_TOLERANCE for p, q in zip(a, b, strict=True))


@lru_cache(maxsize=32)
def recognise(profile: bytes) -> Standard | None:
    """The standard space a profile's colorimetry matches, or None (also for malformed profiles)."""
    try:
        if profile[12:16] not in (b"mntr", b"spac") or profile[16:20] != b"RGB " or profile[20:24] != b"XYZ ":
            return None
        tags = _tags(profile)
        if tags.keys() & _LUT_TAGS:
            return None
        white = _xyz(tags[b"wtpt"])
        columns = (_xyz(tags[b"rXYZ"]), _xyz(tags[b"gXYZ"]), _xyz(tags[b"bXYZ"]))
        curves = [_curve(tags[sig]) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    except (MalformedError, KeyError, struct.error, ValueError, OverflowError):
        return None
    # Version 4 profiles state D50 here, version 2 ones usually the display's D65.
    if not (_close(white, _D50) or _close(white, _D65)):
        return None
    for standard in STANDARDS:
        if not all(_close(c, p) for c, p in zip(columns, standard.primaries, strict=True)):
            continue
        xs = [i / (_TRC_SAMPLES - 1) for i in range(_TRC_SAMPLES)]
        try:
            ok = all(abs(curve(x) - standard.curve(x)) <= _TRC_TOLERANCE for curve in curves for x in xs)
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            return None
        return standard if ok else None
    return None


def rebuilt(profile: bytes | None) -> bytes | None:
    """Our neutral profile for a recognised standard profile; None when there is no profile.

    Raises ValueError for a profile that is not a standard one: the caller must convert instead.
    """
    if not profile:
        return None
    standard = recognise(profile)
    if standard is None:
        raise ValueError("the ICC profile is not a recognised standard profile")
    return standard.profile


def is_standard(profile: bytes | None) -> bool:
    """Whether the profile is absent or recognised as a standard space (no conversion needed)."""
    return not profile or recognise(profile) is not None


def is_rebuilt(profile: bytes) -> bool:
    """Whether the bytes are exactly one of our rebuilt profiles (the only ICC a clean copy holds)."""
    return profile in REBUILT
