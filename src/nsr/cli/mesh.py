"""`nsr mesh RUN [--resolution 512] [--out mesh.ply] [--format ply|obj|glb] [--vertex-colors] [--texture]
[--fill-unseen]`: marching cubes in world units, block by block, optionally coloured by the run's appearance
network (per vertex, or baked into a UV texture)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro
from tqdm import tqdm

from nsr import checks
from nsr.atomic import check_writable_file
from nsr.cli.common import CountProgress, friendly
from nsr.engine.run import open_run
from nsr.evaluation.meshes import extract_world_mesh, training_depth_views
from nsr.mesh.colour import vertex_colours, with_vertex_colours
from nsr.mesh.errors import MeshError
from nsr.mesh.export import MESH_FORMATS, mesh_format, save_mesh
from nsr.mesh.extract import DEFAULT_BLOCK_SIZE, MemoryEstimate
from nsr.mesh.texture import check_texture_support, texture_mesh


@dataclass
class MeshArgs:
    """Extract the zero level set of a trained SDF as a mesh (PLY, OBJ or GLB) in the scene's world units."""

    run: Annotated[Path, tyro.conf.Positional]
    """Run folder written by `nsr train`."""
    resolution: int = 512
    """Grid resolution per axis over the bounding cube of the unit sphere."""
    out: Path | None = None
    """Output file, .ply, .obj or .glb (default: RUN/mesh_<step>.<format>)."""
    format: Literal["ply", "obj", "glb"] | None = None
    """File format (default: the suffix of --out, else ply); must agree with the suffix of --out."""
    vertex_colors: bool = False
    """Colour the vertices with the run's appearance network (see --color-view)."""
    texture: bool = False
    """Write a UV-textured GLB instead of vertex colours: xatlas unwraps the mesh (pip install "nsr[texture]"),
    the appearance network's colours (as --vertex-colors, --color-view) are baked into the texture."""
    texture_size: int = 1024
    """Texture width and height in texels (--texture)."""
    color_view: Literal["cameras", "normal"] = "cameras"
    """View direction of --vertex-colors and --texture: `cameras`, the mean direction of the training cameras that see the
    vertex (-normal where none does; reads the cameras from the run's scene), or `normal`, looking straight at
    the surface (-normal, as instant-nsr-pl and Neuralangelo export colours)."""
    checkpoint: str = "latest"
    """`latest`, a step number, or a checkpoint file name."""
    keep_largest: bool = True
    """Keep only the largest connected component."""
    fill_unseen: bool = False
    """Fill the SDF's hidden pockets first: positive space that no training camera sees as empty and that
    the surface encloses (inner sheets left by trained cameras; see docs/cameras.md). Reads the cameras
    from the run's scene."""
    data: Path | None = None
    """The run's scene folder, if it moved since training (for --fill-unseen and --vertex-colors)."""
    block_size: int = DEFAULT_BLOCK_SIZE
    """Grid cells per block edge: marching cubes runs one block at a time, so this bounds the grid's memory
    whatever the resolution (the mesh itself still grows with it)."""
    device: str = "auto"
    """Where to evaluate the SDF."""

    def validate(self) -> None:
        checks.at_least("resolution", self.resolution, 2)
        checks.positive("texture_size", self.texture_size)
        checks.positive("block_size", self.block_size)
        checks.device("device", self.device)


def run(argv: list[str]) -> int:
    args = tyro.cli(MeshArgs, args=argv, prog="nsr mesh")
    return friendly(lambda: _run(args))


def _run(args: MeshArgs) -> int:
    checks.validate_config(args)
    if args.out is not None:
        check_writable_file(args.out)
    default = "glb" if args.texture else MESH_FORMATS[0]
    kind = mesh_format(args.out, args.format) if args.out is not None else (args.format or default)
    if args.texture:
        check_texture_support()
        if kind != "glb":
            raise MeshError(f"--texture writes GLB (the texture embedded), not {kind}: use --format glb")
    coloured = args.vertex_colors or args.texture
    run_ = open_run(args.run, args.checkpoint, args.device)
    out = args.out or args.run / f"mesh_{run_.step:07d}.{kind}"
    views = None
    if args.fill_unseen or (coloured and args.color_view == "cameras"):
        progress = CountProgress("depth maps of the training views")
        try:
            views = training_depth_views(run_, args.data, progress=progress)
        finally:
            progress.close()

    def announce(estimate: MemoryEstimate) -> None:
        tqdm.write(estimate.describe())

    progress = CountProgress("marching cubes")
    try:
        mesh = extract_world_mesh(
            run_.model,
            run_.scale_mat,
            args.resolution,
            keep_largest=args.keep_largest,
            progress=progress,
            views=views if args.fill_unseen else None,
            block_size=args.block_size,
            on_estimate=announce,
        )
    finally:
        progress.close()
    if coloured:
        to_model = np.linalg.inv(run_.scale_mat)
        cell = 2.0 / (args.resolution - 1)

        def colours_at(points: np.ndarray, desc: str) -> np.ndarray:
            progress = CountProgress(desc)
            try:
                return vertex_colours(
                    points @ to_model[:3, :3].T + to_model[:3, 3],
                    run_.model.sdf_field,
                    run_.model.appearance,
                    views if args.color_view == "cameras" else None,
                    tolerance=max(0.01, 2 * cell),
                    progress=progress,
                )
            finally:
                progress.close()

        if args.texture:
            print(
                f"unwrapping {len(mesh.faces)} triangles with xatlas (no progress bar: about a minute per 100k)"
            )
            mesh = texture_mesh(mesh, lambda points: colours_at(points, "texture"), args.texture_size)
        else:
            mesh = with_vertex_colours(mesh, colours_at(np.asarray(mesh.vertices), "vertex colours"))
    save_mesh(mesh, out, kind)
    what = ", texture" if args.texture else ", vertex colours" if args.vertex_colors else ""
    print(f"wrote {out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces (world units{what})")
    return 0
