"""Commands that convert between volumes, point clouds and meshes."""

from __future__ import annotations

import argparse

from pcc.cli import add_command
from pcc.cli.implant import add_plate_options, finish_options
from pcc.cli.paths import check_input, check_output, positive_int
from pcc.errors import InputError


def register(commands: argparse._SubParsersAction) -> None:
    p = add_command(
        commands, "to-points", help="Sample points (world mm, outward normals) on a binary volume's surface.",
        example="pcc to-points implant/000.nrrd -o implant_000.ply -n 16384",
    )
    p.add_argument("volume", help="binary volume (.nrrd, .nii, .nii.gz)")
    p.add_argument("-o", "--output", required=True, help="cloud file: .ply, .npz or .xyz")
    p.add_argument("-n", "--points", type=positive_int, default=16384, help="number of points (default 16384)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-normals", action="store_true", help="write points only")
    p.set_defaults(run=_to_points)

    p = add_command(
        commands, "to-volume", help="Voxelize the solid a closed surface cloud bounds onto a reference grid.",
        example="pcc to-volume implant_000.ply -o implant_000.nrrd --like implant/000.nrrd",
    )
    p.add_argument("cloud", help="point cloud (.ply, .npz, .xyz) in world mm, ideally with outward normals")
    p.add_argument("-o", "--output", required=True, help="output volume (.nrrd, .nii, .nii.gz)")
    p.add_argument("--like", required=True, help="reference volume whose grid the output uses")
    p.set_defaults(run=_to_volume)

    p = add_command(
        commands, "mesh",
        help="Printable surface mesh (world mm) of a binary volume: one watertight, outward, smoothed solid (STL or PLY).",
        example=("pcc mesh implant/000.nrrd -o implant_000.stl --clearance 0.3 --defective defective_skull/000.nrrd",
                 "pcc mesh implant/000.nrrd -o implant_000.stl --defective defective_skull/000.nrrd --holes 2:10"),
    )
    p.add_argument("volume", help="binary volume (.nrrd, .nii, .nii.gz)")
    p.add_argument("-o", "--output", required=True, help="mesh file: .stl or .ply")
    p.add_argument("--clearance", type=float, default=0.0, help="fitting gap in mm opened where the part meets bone (default 0)")
    p.add_argument("--defective", help="defective skull on the same grid: limits the clearance to faces that touch bone "
                                       "(and, with --holes, keeps the holes clear of it)")
    add_plate_options(p, thickness=False)
    p.set_defaults(run=_mesh)


def _to_points(args: argparse.Namespace) -> None:
    from pcc.geometry.cloud import PointCloud
    from pcc.geometry.surface import volume_to_points
    from pcc.io import read_volume, write_cloud
    from pcc.volume import require_binary

    check_input(args.volume, "input volume")
    output = check_output(args.output, args.volume)
    if not str(output).lower().endswith((".ply", ".npz", ".xyz")):
        raise InputError(f"{output}: point-cloud output must end in .ply, .npz or .xyz")
    volume = require_binary(read_volume(args.volume), args.volume)
    cloud = volume_to_points(volume, args.points, seed=args.seed)
    write_cloud(output, PointCloud(cloud.points) if args.no_normals else cloud)


def _to_volume(args: argparse.Namespace) -> None:
    from pcc.geometry.voxelize import points_to_volume
    from pcc.io import is_volume_path, read_cloud, read_volume, write_volume

    check_input(args.cloud, "input cloud")
    check_input(args.like, "reference volume")
    output = check_output(args.output, args.cloud, args.like)
    if not is_volume_path(output):
        raise InputError(f"{output}: volume output must end in .nrrd, .nii or .nii.gz")
    like = read_volume(args.like)
    cloud = read_cloud(args.cloud)
    write_volume(output, points_to_volume(cloud, like))


def _mesh(args: argparse.Namespace) -> None:
    import numpy as np

    from pcc.geometry.surface import Mesh
    from pcc.io import read_volume, write_mesh
    from pcc.outputs.printing import SMOOTHING_ITERATIONS, printable_mesh
    from pcc.volume import require_binary

    finish = finish_options(args)
    if finish.holes is not None and not args.defective:
        raise InputError("--holes keeps the holes clear of the bone: add --defective DEFECTIVE_SKULL")
    check_input(args.volume, "input volume")
    output = check_output(args.output, args.volume)
    if not str(output).lower().endswith((".stl", ".ply")):
        raise InputError(f"{output}: mesh output must end in .stl or .ply")
    if args.clearance < 0:
        raise InputError(f"--clearance must be ≥ 0 mm, got {args.clearance}")
    volume = require_binary(read_volume(args.volume), args.volume)
    defective = read_volume(args.defective) if args.defective else None
    if defective is not None and not defective.same_grid(volume):
        raise InputError(f"{args.defective} is not on the same grid as {args.volume}; give the matching defective skull")
    if finish.holes is not None:
        from pcc.pipeline.finish import finish_implant

        record: dict = {}
        volume = finish_implant(volume, defective, finish, record=record, timings={}, warnings=[])
        holes = record["holes"]
        print(f"{holes['count']} holes of {holes['diameter_mm']:g} mm, {holes['spacing_mm']:g} mm apart")
    mesh = printable_mesh(volume, clearance_mm=args.clearance, defective=defective,
                          smoothing_iterations=SMOOTHING_ITERATIONS if finish.smooth else 0)
    write_mesh(output, Mesh(np.asarray(mesh.vertices), np.asarray(mesh.faces)), space=volume.space)
