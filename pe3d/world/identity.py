"""Procedural portrait identities: every shape and colour parameter of one synthetic head.

An :class:`Identity` is a frozen (hashable) dataclass of plain floats, strings and RGB
tuples; :func:`sample_identity` draws one deterministically from ``(seed, index)`` with a
``numpy`` generator seeded from both numbers, so the same pair always gives the same
head on every machine and in every process.

Units are world units of the EG3D/FFHQ camera convention (``+y`` up, face towards ``+z``,
head near the origin; the FFHQ camera sees about ``+-0.29`` units around the face).
Colours are linear-ish sRGB triples in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

RGB = tuple[float, float, float]

HAIR_STYLES: tuple[str, ...] = ("bald", "short", "long", "bun", "curly", "bob")
"""Hair styles: ``bald`` (no hair), ``short`` (a cap over the skull), ``long`` (cap plus a
curtain down the back and the sides to the shoulders), ``bun`` (thin cap plus a bun on the
back of the crown), ``curly`` (thick, bumpy, puffy volume), ``bob`` (cap plus a chin-length
curtain)."""

BEARD_STYLES: tuple[str, ...] = ("none", "full", "goatee", "moustache")
"""Beard styles; ``none`` for a clean-shaven face."""

_SKIN_PALETTE = np.array(
    [
        (0.98, 0.85, 0.76),
        (0.94, 0.77, 0.64),
        (0.85, 0.64, 0.50),
        (0.70, 0.49, 0.35),
        (0.52, 0.34, 0.23),
        (0.36, 0.23, 0.16),
        (0.26, 0.17, 0.12),
    ]
)
_HAIR_PALETTE: tuple[tuple[RGB, float], ...] = (
    ((0.05, 0.045, 0.045), 0.24),  # black
    ((0.16, 0.10, 0.06), 0.22),  # dark brown
    ((0.33, 0.21, 0.12), 0.16),  # brown
    ((0.50, 0.22, 0.10), 0.08),  # auburn / red
    ((0.78, 0.62, 0.38), 0.11),  # blonde
    ((0.92, 0.84, 0.62), 0.06),  # light blonde
    ((0.55, 0.55, 0.56), 0.07),  # grey
    ((0.88, 0.88, 0.86), 0.04),  # white
    ((0.62, 0.20, 0.45), 0.02),  # dyed magenta
)
_EYE_PALETTE: tuple[tuple[RGB, float], ...] = (
    ((0.20, 0.11, 0.05), 0.35),  # dark brown
    ((0.38, 0.23, 0.10), 0.20),  # brown
    ((0.45, 0.38, 0.15), 0.10),  # hazel
    ((0.26, 0.48, 0.28), 0.10),  # green
    ((0.28, 0.48, 0.78), 0.15),  # blue
    ((0.48, 0.55, 0.62), 0.10),  # grey
)
_GLASSES_PALETTE: tuple[RGB, ...] = (
    (0.06, 0.06, 0.07),  # black
    (0.35, 0.18, 0.08),  # tortoise brown
    (0.80, 0.65, 0.30),  # gold metal
    (0.70, 0.70, 0.74),  # silver metal
    (0.65, 0.10, 0.12),  # red
    (0.12, 0.22, 0.55),  # blue
)


@dataclass(frozen=True)
class Identity:
    """All parameters of one procedural head (world units, RGB in ``[0, 1]``).

    Heights (``eye_height``, ``mouth_height``, ``hairline``) are in the canonical head frame:
    cranium centred near ``(0, 0.07, -0.03)``, face towards ``+z``, eyes at about
    ``y = 0.05``, mouth at ``y = -0.1``, chin near ``y = -0.18``. :func:`pe3d.world.field.build_field`
    moves the whole head down by 0.04 (``HEAD_Y``) so that in world space the eyes sit just above
    the image centre of the frontal FFHQ camera; neck and shoulders follow below and are
    clipped at ``y = -0.45``.
    """

    seed: int
    index: int
    # skull and face
    head_width: float  # cranium x radius
    head_height: float  # cranium y radius
    head_depth: float  # cranium z radius
    jaw_width: float  # lower-face ellipsoid x radius
    jaw_height: float  # lower-face ellipsoid y radius
    jaw_depth: float  # lower-face ellipsoid z radius
    chin_size: float  # chin bump radius
    cheek_size: float  # cheek-bone bump radius
    neck_radius: float
    shoulder_width: float  # half width of the shoulder capsule
    # features
    ear_size: float  # ear half height
    ear_protrusion: float  # how far the ears stick out sideways
    nose_length: float  # bridge-to-tip vertical length
    nose_width: float  # tip radius
    nose_protrusion: float  # how far the tip sits in front of the face
    eye_spacing: float  # half distance between the eye centres
    eye_height: float  # y of the eye centres
    eye_radius: float
    iris_size: float  # iris angular radius (radians) on the eyeball
    eye_openness: float  # socket height relative to the eyeball (smaller = sleepier)
    mouth_width: float  # half width of the lips
    mouth_height: float  # y of the mouth line
    lip_thickness: float  # half height of each lip
    has_brows: bool
    brow_thickness: float
    brow_arch: float  # vertical lift of the brow middle
    # hair, beard, glasses
    hair_style: str
    hair_volume: float  # thickness of the hair shell over the skull
    hairline: float  # y of the hairline on the forehead
    beard_style: str
    has_glasses: bool
    glasses_radius: float  # rim radius
    glasses_thickness: float  # frame tube radius
    # colours
    skin_rgb: RGB
    lip_rgb: RGB
    hair_rgb: RGB
    brow_rgb: RGB
    eye_rgb: RGB
    clothes_rgb: RGB
    glasses_rgb: RGB

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of all fields."""
        return asdict(self)

    @property
    def name(self) -> str:
        """Short stable name, e.g. ``"s0-i12"``."""
        return f"s{self.seed}-i{self.index}"


def _rgb(values: np.ndarray | tuple[float, ...]) -> RGB:
    arr = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _choice(rng: np.random.Generator, palette: tuple[tuple[RGB, float], ...]) -> np.ndarray:
    weights = np.array([w for _, w in palette])
    i = int(rng.choice(len(palette), p=weights / weights.sum()))
    return np.array(palette[i][0])


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    pos = rng.uniform(0.0, len(_SKIN_PALETTE) - 1.0)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(_SKIN_PALETTE) - 1)
    base = _SKIN_PALETTE[lo] * (1 - (pos - lo)) + _SKIN_PALETTE[hi] * (pos - lo)
    # undertone jitter: a little redder / yellower
    undertone = rng.uniform(-1.0, 1.0)
    base = base * np.array([1.0 + 0.02 * undertone, 1.0, 1.0 - 0.05 * undertone])
    return base * rng.uniform(0.96, 1.03)


def sample_identity(seed: int, index: int) -> Identity:
    """Draw the identity number ``index`` of the world with seed ``seed``.

    Deterministic: a ``numpy`` generator seeded with ``[seed, index]`` (both non-negative
    integers) draws every parameter, so equal pairs give equal identities everywhere.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    rng = np.random.default_rng([int(seed), int(index), 0x3D9E])
    u = rng.uniform

    head_width = u(0.140, 0.158)
    hair_style = str(rng.choice(HAIR_STYLES, p=[0.10, 0.28, 0.24, 0.12, 0.14, 0.12]))
    beard_style = "none"
    if rng.uniform() < 0.25:
        beard_style = str(rng.choice(BEARD_STYLES[1:], p=[0.5, 0.3, 0.2]))
    has_glasses = bool(rng.uniform() < 0.3)

    skin = _skin_tone(rng)
    lips = skin * np.array([0.86, 0.60, 0.60]) + np.array([0.08, 0.0, 0.0])
    lips = lips * u(0.85, 1.0)
    hair = _choice(rng, _HAIR_PALETTE) * u(0.85, 1.12)
    brow = hair * 0.75 if hair.mean() < 0.6 else hair * 0.7
    if hair_style == "bald" and rng.uniform() < 0.7:
        brow = _choice(rng, _HAIR_PALETTE[:4]) * 0.8
    eye = _choice(rng, _EYE_PALETTE) * u(0.9, 1.1)
    clothes = _hsv_to_rgb(u(0.0, 1.0), u(0.15, 0.75), u(0.25, 0.9))
    glasses = np.array(_GLASSES_PALETTE[int(rng.integers(len(_GLASSES_PALETTE)))])

    return Identity(
        seed=int(seed),
        index=int(index),
        head_width=head_width,
        head_height=u(0.178, 0.198),
        head_depth=u(0.175, 0.195),
        jaw_width=u(0.104, 0.126),
        jaw_height=u(0.118, 0.140),
        jaw_depth=u(0.120, 0.138),
        chin_size=u(0.030, 0.042),
        cheek_size=u(0.036, 0.048),
        neck_radius=u(0.055, 0.072),
        shoulder_width=u(0.17, 0.23),
        ear_size=u(0.030, 0.040),
        ear_protrusion=u(0.004, 0.014),
        nose_length=u(0.046, 0.060),
        nose_width=u(0.011, 0.016),
        nose_protrusion=u(0.020, 0.032),
        eye_spacing=u(0.056, 0.066),
        eye_height=u(0.040, 0.058),
        eye_radius=u(0.017, 0.021),
        iris_size=u(0.48, 0.60),
        eye_openness=u(0.75, 1.0),
        mouth_width=u(0.030, 0.042),
        mouth_height=u(-0.112, -0.095),
        lip_thickness=u(0.0065, 0.0105),
        has_brows=bool(rng.uniform() < 0.95),
        brow_thickness=u(0.005, 0.008),
        brow_arch=u(0.0, 0.008),
        hair_style=hair_style,
        hair_volume=u(0.012, 0.030),
        hairline=u(0.135, 0.175),
        beard_style=beard_style,
        has_glasses=has_glasses,
        glasses_radius=u(0.028, 0.036),
        glasses_thickness=u(0.0030, 0.0045),
        skin_rgb=_rgb(skin),
        lip_rgb=_rgb(lips),
        hair_rgb=_rgb(hair),
        brow_rgb=_rgb(brow),
        eye_rgb=_rgb(eye),
        clothes_rgb=_rgb(clothes),
        glasses_rgb=_rgb(glasses),
    )
