"""Where a run's cameras start from, the camera files kept in a run folder, and their evaluation.

A run with `cameras.init_file`, `cameras.pose_noise` or `cameras.trainable` keeps two camera files
in the cameras.npz layout (world_mat_i, scale_mat_i; readable by any IDR tool):

    RUN/cameras_gt.npz     the scene's own (ground-truth) cameras
    RUN/cameras_init.npz   the poses training started from (noisy file or perturbed ground truth)

The model lives in the initial cameras' normalised frame (for a noisy camera file: that file's own
scale_mat), which scene.json records.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from nsr.atomic import atomic_write
from nsr.cameras.projection import compose_projection
from nsr.cameras.refine import CameraRefineConfig, PoseNoise, perturb_poses
from nsr.data.idr import load_cameras
from nsr.data.scene import SceneData
from nsr.metrics.poses import PoseErrors, Similarity, object_alignment, pose_errors

GT_CAMERAS = "cameras_gt.npz"
INIT_CAMERAS = "cameras_init.npz"


def uses_camera_init(config: CameraRefineConfig) -> bool:
    """Whether the run's cameras differ from (or may move away from) the scene's cameras."""
    return bool(config.trainable or config.init_file or config.pose_noise)


def initial_scene(scene: SceneData, config: CameraRefineConfig) -> SceneData:
    """The scene with its poses replaced by the initial ones of `config` (the scene itself if none).

    A camera file gives its own poses and scale_mat (intrinsics stay the scene's); pose noise perturbs
    the scene's poses (perturb_poses, scene centre = the normalised frame's origin).
    """
    config.validate()
    if config.init_file:
        path = Path(config.init_file)
        if not path.is_absolute() and scene.root is not None:
            path = scene.root / path
        _, c2w, scale_mat = load_cameras(path, scene.num_views)
        return dataclasses.replace(scene, c2w=c2w, scale_mat=scale_mat)
    if config.pose_noise:
        return dataclasses.replace(scene, c2w=perturb_poses(scene.c2w, PoseNoise.parse(config.pose_noise)))
    return scene


def write_cameras(path: str | Path, intrinsics: np.ndarray, c2w: np.ndarray, scale_mat: np.ndarray) -> Path:
    """Write (N, 3, 3) K and (N, 4, 4) normalised-frame c2w as a cameras.npz-layout file, atomically."""
    world_from_norm = np.linalg.inv(scale_mat)
    arrays = {}
    for i in range(len(c2w)):
        arrays[f"world_mat_{i}"] = compose_projection(intrinsics[i], c2w[i]) @ world_from_norm
        arrays[f"scale_mat_{i}"] = np.asarray(scale_mat, dtype=np.float64)
    return atomic_write(path, lambda file: np.savez(file, **arrays))


def save_run_cameras(run_dir: str | Path, gt: SceneData, initial: SceneData) -> None:
    """RUN/cameras_gt.npz and RUN/cameras_init.npz (module docstring)."""
    run_dir = Path(run_dir)
    write_cameras(run_dir / GT_CAMERAS, gt.intrinsics, gt.c2w, gt.scale_mat)
    write_cameras(run_dir / INIT_CAMERAS, initial.intrinsics, initial.c2w, initial.scale_mat)


def world_scale(scale_mat: np.ndarray) -> float:
    """The scale factor of a similarity scale_mat (normalised units -> world units)."""
    return float(abs(np.linalg.det(np.asarray(scale_mat)[:3, :3])) ** (1.0 / 3.0))


@dataclasses.dataclass
class CameraEvaluation:
    """Pose errors of a run's cameras before (initial poses) and after training."""

    before: PoseErrors
    after: PoseErrors
    views: list[int]
    """The views compared (scene view indices)."""
    gt_scale_mat: np.ndarray
    """(4, 4) the ground truth's normalised frame -> its world units."""
    object_alignment: Similarity | None = None
    """The model's frame -> the ground truth's normalised frame for the reconstruction (mesh, held-out views):
    the cameras' alignment with its translation from where they look (`nsr.metrics.poses.object_alignment`);
    None: the cameras' alignment itself (`alignment="centres"`)."""

    @property
    def frame(self) -> Similarity:
        """The similarity that maps the reconstruction into the ground truth's normalised frame."""
        return self.after.alignment if self.object_alignment is None else self.object_alignment

    def model_to_gt_world(self) -> np.ndarray:
        """(4, 4): the model's (normalised) frame -> the ground truth's world frame (`frame`)."""
        return self.gt_scale_mat @ self.frame.matrix()

    def summary(self) -> dict:
        scale = world_scale(self.gt_scale_mat)
        return {
            "views": self.views,
            "world_scale": scale,
            "before": self.before.summary(scale),
            "after": self.after.summary(scale),
            "per_view": {
                "rotation_deg_before": self.before.rotation_deg.tolist(),
                "rotation_deg_after": self.after.rotation_deg.tolist(),
                "centre_rel_before": self.before.centre_rel.tolist(),
                "centre_rel_after": self.after.centre_rel.tolist(),
            },
            "alignment": {
                "scale": self.after.alignment.scale,
                "rotation": self.after.alignment.rotation.tolist(),
                "translation": self.after.alignment.translation.tolist(),
                "object": "centres" if self.object_alignment is None else "look-at",
                "object_translation": self.frame.translation.tolist(),
                "model_to_gt_world": self.model_to_gt_world().tolist(),
            },
        }


def evaluate_cameras(
    initial_c2w: np.ndarray,
    final_c2w: np.ndarray,
    gt_c2w: np.ndarray,
    gt_scale_mat: np.ndarray,
    views: list[int],
    inlier_threshold: float = 0.05,
    alignment: str = "look-at",
) -> CameraEvaluation:
    """Align initial and final poses (all (N, 4, 4), model frame) of `views` to the ground truth and measure them.

    The camera errors come from the similarity fitted on the camera centres; the reconstruction is mapped by
    the same similarity with its translation from where the cameras look (`alignment="look-at"`,
    `nsr.metrics.poses.object_alignment`, fitted on the centres' inliers) or by the centres' own
    (`"centres"`)."""
    if alignment not in ("look-at", "centres"):
        raise ValueError(f"alignment must be 'look-at' or 'centres', got {alignment!r}")
    idx = np.asarray(views, dtype=np.int64)
    after = pose_errors(final_c2w[idx], gt_c2w[idx], inlier_threshold=inlier_threshold)
    frame = None
    if alignment == "look-at":
        frame = object_alignment(after.alignment, final_c2w[idx], gt_c2w[idx], cameras=after.inliers)
    return CameraEvaluation(
        before=pose_errors(initial_c2w[idx], gt_c2w[idx], inlier_threshold=inlier_threshold),
        after=after,
        views=[int(v) for v in idx],
        gt_scale_mat=np.asarray(gt_scale_mat, dtype=np.float64),
        object_alignment=frame,
    )


def poses_in_model_frame(
    evaluation: CameraEvaluation, final_c2w: np.ndarray, gt_c2w: np.ndarray
) -> np.ndarray:
    """(N, 4, 4) camera-to-world transforms of every view in the model's frame, for rendering.

    The views the cameras were evaluated on (the training views) keep the run's final poses; every other
    view (the held-out ones, never trained) gets its ground-truth pose mapped into the model's frame by
    the inverse of the alignment fitted on the training cameras (`CameraEvaluation.frame`: the object where
    the trained cameras see it). Rendering a held-out view at its initial
    (noisy) pose, or at the ground-truth pose in a frame the trained cameras have drifted from, would
    measure the pose error instead of the reconstruction.
    """
    poses = evaluation.frame.inverse().apply_c2w(gt_c2w)
    trained = np.asarray(evaluation.views, dtype=np.int64)
    poses[trained] = np.asarray(final_c2w, dtype=np.float64)[trained]
    return poses
