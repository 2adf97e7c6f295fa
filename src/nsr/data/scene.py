"""The in-memory scene every parser produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class SceneData:
    """Images, masks and cameras of one scene, in the normalised frame (object inside the unit sphere).

    Shapes: N views of H x W pixels.
    """

    images: np.ndarray
    """(N, H, W, 3) float32 colours in [0, 1]."""
    masks: np.ndarray
    """(N, H, W) bool object masks (True = object)."""
    intrinsics: np.ndarray
    """(N, 3, 3) float64 pinhole matrices K (pixel centres at integer coordinates)."""
    c2w: np.ndarray
    """(N, 4, 4) float64 camera-to-world transforms in the normalised frame (OpenCV camera axes)."""
    scale_mat: np.ndarray = field(default_factory=lambda: np.eye(4))
    """(4, 4) similarity mapping the normalised frame to world units: x_world = scale_mat @ x_norm."""
    image_names: list[str] = field(default_factory=list)
    """File names of the images, in view order."""
    root: Path | None = None
    """The folder the scene was read from (None for generated scenes)."""
    has_masks: bool = True
    """Whether the masks come from the scene (False: the scene has none and `masks` is all True)."""
    composited_on: tuple[float, float, float] | None = None
    """The colour the images were composited on where they were transparent (NeRF-synthetic RGBA), when
    the loader did it; None otherwise (see nsr.data.background)."""

    @property
    def num_views(self) -> int:
        return int(self.images.shape[0])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def subset(self, indices: list[int] | np.ndarray) -> SceneData:
        """The scene restricted to the given views (in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        return SceneData(
            images=self.images[idx],
            masks=self.masks[idx],
            intrinsics=self.intrinsics[idx],
            c2w=self.c2w[idx],
            scale_mat=self.scale_mat,
            image_names=[self.image_names[i] for i in idx] if self.image_names else [],
            root=self.root,
            has_masks=self.has_masks,
            composited_on=self.composited_on,
        )

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """(M, 3) normalised-frame points -> (M, 3) world points."""
        return points @ self.scale_mat[:3, :3].T + self.scale_mat[:3, 3]
