"""Textured surroundings for synthetic scenes, so that masks are neither needed nor trivial.

`nsr data synth --backdrop plane|room` renders the object inside textured surroundings instead of on a
flat background colour. The layout follows what a NeuS model with a NeRF++ background expects (the
normalised frame: the object's bounding sphere is the unit sphere):

- the **ground plane** touches the object's lowest point (the object stands on it, as DTU's objects
  stand on their table). Inside the unit sphere it is a disc below the object: that part is reconstructed
  by the SDF beside the object, as a table top is; the ground-truth mesh stays the object alone, so
  geometry metrics cull by the object's masks (DTU's protocol for unmasked training);
- everything else lies **outside** the unit sphere, for the background model: `plane` closes the scene
  with a dome (a sphere about the centre), `room` with four walls and a ceiling. Their size follows the
  cameras: the dome's radius and the walls' distance are `ROOM_FACTOR` x the farthest camera's distance
  from the centre (and at least 2), the ceiling as high above the ground;
- every ray of every camera meets a textured surface (cameras stand above the ground, inside the room or
  dome), so the background surrounds the object in every view.

Textures are procedural and deterministic: tiles of varied colours (a fixed random palette) with darker
joints and a slow brightness wave, different on the floor, each wall, the ceiling and the dome. The
backdrop is lit by a soft wrap-around term, ambient + (1 - ambient) (1 + n.l) / 2, with no shadows (the
object casts none on it); the object itself is shaded as without a backdrop.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from nsr.data.errors import DataError

BACKDROPS = ("none", "plane", "room")
"""`none`: the flat background colour; `plane`: ground plane and dome; `room`: ground, walls, ceiling."""
ROOM_FACTOR = 1.6
"""Dome radius / wall distance over the farthest camera's distance from the centre."""
GROUND_GAP = 0.002
"""The ground lies this far (normalised units) below the object's lowest vertex: no coincident faces."""

_FLOOR, _CEILING, _DOME, _WALLS = 0, 1, 2, 3  # surface ids; walls are 3..6 (+a, -a, +b, -b)


@dataclass
class BackdropLayout:
    """Where the backdrop's surfaces are, in the normalised frame of the scene's bounding sphere."""

    kind: str
    """`plane` or `room`."""
    centre: np.ndarray
    """(3,) world position of the bounding sphere's centre."""
    scale: float
    """World units per normalised unit (the bounding sphere's radius)."""
    axes: np.ndarray
    """(3, 3) world directions of the local axes, rows (a, up, b): right-handed, `up` the mesh's up."""
    ground: float
    """Height of the ground plane along `up` (normalised)."""
    extent: float
    """Dome radius (`plane`) or distance of the walls from the centre (`room`), normalised."""
    ceiling: float
    """`room`: height of the ceiling along `up` (normalised)."""

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """(M, 3) world points -> (M, 3) local normalised coordinates (a, up, b)."""
        return ((points - self.centre) / self.scale) @ self.axes.T

    def describe(self) -> dict:
        """Plain data for scene.json."""
        return {
            "kind": self.kind,
            "ground": self.ground,
            "extent": self.extent,
            "ceiling": self.ceiling if self.kind == "room" else None,
            "axes": self.axes.tolist(),
        }


def up_frame(up: np.ndarray) -> np.ndarray:
    """(3, 3) rows (a, up, b): two horizontal axes completing the unit vector `up` to a right-handed frame."""
    a = np.roll(np.abs(up), -1)  # y up: a = x, b = z; z up: a = y, b = x (as the camera layouts)
    return np.stack([a, up, np.cross(a, up)])


def backdrop_layout(
    kind: str,
    vertices: np.ndarray,
    scale_mat: np.ndarray,
    up: np.ndarray,
    camera_centres: np.ndarray,
    path: str | Path = "cameras",
) -> BackdropLayout:
    """The backdrop around a mesh (`vertices` (V, 3) world) seen from `camera_centres` (N, 3) world
    (`path`: where the cameras come from, for errors).

    Raises:
        DataError: for an unknown kind, or a camera below the ground plane (it would see the ground's
            underside and not the object's surroundings).
    """
    if kind not in BACKDROPS[1:]:
        raise DataError(path, f"unknown backdrop {kind!r}", f"use one of {', '.join(BACKDROPS)}")
    centre, scale = scale_mat[:3, 3], float(scale_mat[0, 0])
    axes = up_frame(np.asarray(up, dtype=np.float64))
    ground = float((((vertices - centre) / scale) @ axes[1]).min()) - GROUND_GAP
    layout = BackdropLayout(kind, centre, scale, axes, ground, 0.0, 0.0)
    cameras = layout.to_local(camera_centres)
    low = np.flatnonzero(cameras[:, 1] <= ground)
    if len(low):
        raise DataError(
            path,
            f"camera {low[0]} lies below the ground plane of the backdrop ({len(low)} of {len(cameras)})",
            "use cameras above the object's lowest point (e.g. --layout turntable) or --backdrop none",
        )
    layout.extent = max(2.0, ROOM_FACTOR * float(np.linalg.norm(cameras, axis=1).max()))
    layout.ceiling = ground + layout.extent
    return layout


@lru_cache(maxsize=8)
def _palette(seed: int) -> np.ndarray:
    """(1024, 3) linear RGB tile colours, varied in hue and brightness."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 0.75, size=(1024, 3))
    return base * rng.uniform(0.4, 1.0, size=(1024, 1))


def _tiles(u: np.ndarray, v: np.ndarray, size: float, seed: int, stagger: bool = False) -> np.ndarray:
    """(M, 3) linear albedo of a tiled pattern at surface coordinates (u, v) (normalised units)."""
    row = np.floor(v / size)
    if stagger:  # bricks: every other row shifted by half a tile
        u = u + 0.5 * size * np.mod(row, 2)
    col = np.floor(u / size)
    key = (col.astype(np.int64) * 73856093) ^ (row.astype(np.int64) * 19349663) ^ (seed * 83492791)
    colour = _palette(seed)[np.mod(key, 1024)]
    fu, fv = u / size - col, v / size - row
    joint = np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv)) < 0.06
    wave = 0.8 + 0.2 * np.sin(2.3 * u + 1.1 * v + seed)
    return colour * np.where(joint, 0.35, 1.0)[:, None] * wave[:, None]


def backdrop_hits(
    layout: BackdropLayout, origins: np.ndarray, dirs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where world rays (origins (M, 3) or (3,), unit dirs (M, 3)) meet the backdrop: (M, 3) points in
    local normalised coordinates (a, up, b) and (M,) surface ids (0 floor, 1 ceiling, 2 dome, 3-6 walls
    +a, -a, +b, -b). Every ray from inside the room or dome meets a surface."""
    o = layout.to_local(np.broadcast_to(origins, dirs.shape))
    d = dirs @ layout.axes.T
    inf = np.full(len(d), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        floor_t = np.where(d[:, 1] < 0, (layout.ground - o[:, 1]) / d[:, 1], inf)
        if layout.kind == "room":
            candidates = [floor_t, np.where(d[:, 1] > 0, (layout.ceiling - o[:, 1]) / d[:, 1], inf), inf]
            for axis in (0, 2):
                candidates.append(np.where(d[:, axis] > 0, (layout.extent - o[:, axis]) / d[:, axis], inf))
                candidates.append(np.where(d[:, axis] < 0, (-layout.extent - o[:, axis]) / d[:, axis], inf))
        else:
            b = np.einsum("mj,mj->m", o, d)
            c = np.einsum("mj,mj->m", o, o) - layout.extent**2
            candidates = [floor_t, inf, -b + np.sqrt(np.maximum(b * b - c, 0.0))]
    times = np.stack(candidates, axis=1)
    surface = np.argmin(times, axis=1)
    t = times[np.arange(len(d)), surface]
    return o + d * t[:, None], surface


def backdrop_radiance(
    layout: BackdropLayout, origins: np.ndarray, dirs: np.ndarray, light: np.ndarray, ambient: float
) -> np.ndarray:
    """(M, 3) linear radiance of the backdrop along world rays (as `backdrop_hits`); `light` is the unit
    direction towards the key light (world axes)."""
    p, surface = backdrop_hits(layout, origins, dirs)
    albedo = np.zeros((len(p), 3))
    normal = np.zeros((len(p), 3))  # local axes, pointing into the scene
    for sid in np.unique(surface):
        sel = surface == sid
        x, y, z = p[sel, 0], p[sel, 1], p[sel, 2]
        if sid == _FLOOR:
            albedo[sel] = _tiles(x, z, 0.25, 1)
            normal[sel] = [0.0, 1.0, 0.0]
        elif sid == _CEILING:
            albedo[sel] = _tiles(x, z, 0.8, 2)
            normal[sel] = [0.0, -1.0, 0.0]
        elif sid == _DOME:
            radius = np.linalg.norm(p[sel], axis=1)
            azimuth = np.arctan2(z, x) * radius
            elevation = np.arcsin(np.clip(y / radius, -1.0, 1.0)) * radius
            albedo[sel] = _tiles(azimuth, elevation, 0.7, 3, stagger=True)
            normal[sel] = -p[sel] / radius[:, None]
        else:  # walls: +a, -a, +b, -b
            wall = sid - _WALLS
            along = z if wall < 2 else x
            albedo[sel] = _tiles(along, y - layout.ground, 0.5, 4 + wall, stagger=True)
            inward = np.zeros(3)
            inward[0 if wall < 2 else 2] = -1.0 if wall % 2 == 0 else 1.0
            normal[sel] = inward
    n_dot_l = normal @ (layout.axes @ light)
    shade = ambient + (1.0 - ambient) * 0.5 * (1.0 + n_dot_l)
    return albedo * shade[:, None]
