"""Start poses with one camera far off: the `outlier` runs of benchmarks/experiments/camera_guard_outlier.yaml.

Writes SCENE/outlier_<seed>.npz (cameras.npz layout, the scene's normalised frame) for each seed: every
camera perturbed as `--pose-noise 3,0.03,SEED` does, and camera `--view` (a training view: not a multiple of
the jobs' holdout 8) turned by `--degrees` about a random axis through its centre instead. A run reads it with
`cameras.init_file: outlier_{seed}.npz` (relative to the scene folder).

    python benchmarks/camera_outlier.py .data/synthetic_spot_mitsuba
    python benchmarks/camera_outlier.py .data/synth_banana --view 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nsr.cameras.refine import PoseNoise, perturb_poses
from nsr.data.formats import load_scene
from nsr.engine.cameras import write_cameras


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scene", type=Path)
    parser.add_argument("--view", type=int, default=1, help="the camera put far off")
    parser.add_argument("--degrees", type=float, default=15.0, help="its rotation error")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    scene = load_scene(args.scene)
    for seed in args.seeds:
        start = perturb_poses(scene.c2w, PoseNoise(3, 0.03, seed))
        start[args.view] = perturb_poses(scene.c2w[[args.view]], PoseNoise(args.degrees, 0.03, 1000 + seed))[
            0
        ]
        path = write_cameras(args.scene / f"outlier_{seed}.npz", scene.intrinsics, start, scene.scale_mat)
        print(f"wrote {path}: view {args.view} {args.degrees:g} deg off, the others 3 deg / 3%")


if __name__ == "__main__":
    main()
