"""Issue 30, route 3 in full: would continuing the rim bone's own surfaces into the hole pay, and how much could?

    python -m tools.analysis.rim_continuation [--model WEIGHTS] [--designs runs/designs_shipped]
                                              [--bands 2,3.5,5,7] [--near-mm 2] [--csv OUT.csv]

Uses the development split's 80 stored designs of tools.analysis.rim_thickness (designed once when missing).
Per case, on the crop:

- **Bound** (`oracle_B`): the DSC when the design is replaced by the truth within B mm of the defective
  skull's bone (B = 2, 5, 10), i.e. the most a step acting in that band could reach.
- **Continuation** (`continued_B`, one per --bands value): a voxel within B mm of the bone and --near-mm of
  the design is implant when a blend of two signed distances (mm, negative inside) is below zero: the
  design's own, and that of the bone plate continued into the hole. The plate near a voxel: the bone's
  surface voxels within 14 mm of the design but more than 2.5 mm from it (neither the cut face nor the
  smoothing around it), a third of them, normals out of the bone from its Gaussian-smoothed mask (sigma
  1 mm), each point moved out by half a voxel along its normal; of the 200 nearest such points (Gaussian
  weights, 4 mm), those whose normal lies within 45 degrees of the main axis of their normals form one
  surface, those within 45 degrees of its opposite the other; each surface is the weighted mean of its
  points' tangent planes, and the voxel lies inside the plate when it lies under both. The blend weighs
  the plate 1 at the bone and 0 at B mm from it.

Prints one row per case and the means of the real, varied and frontal (frontoorbital) cases.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from pcc.shared_data import skullfix_training_set
from tools import REPO
from tools.analysis.rim_thickness import dsc, store_designs

ORACLE_BANDS_MM = (2.0, 5.0, 10.0)
CONTINUATION_BANDS_MM = (2.0, 3.5, 5.0, 7.0)
NEAR_DESIGN_MM = 2.0  # voxels farther than this from the design keep the design's answer (outside)
FIT_REACH_MM = 14.0  # bone surface used for the planes: within this of the design...
CUT_FACE_MM = 2.5  # ...but farther than this from it (the cut face, and the smoothing of the normals around it)
NEIGHBOURS = 200
WEIGHT_MM = 4.0
SIDE_COSINE = np.cos(np.radians(45.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(skullfix_training_set()))
    parser.add_argument("--model", default=None, help="weights (default: shipped)")
    parser.add_argument("--designs", default=str(REPO / "runs" / "designs_shipped"), help="folder of the stored designs")
    parser.add_argument("--bands", default=",".join(f"{b:g}" for b in CONTINUATION_BANDS_MM),
                        help="continuation bands, mm from the bone, comma-separated")
    parser.add_argument("--near-mm", type=float, default=NEAR_DESIGN_MM,
                        help="only voxels within this of the design are re-decided")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    bands = tuple(float(b) for b in args.bands.split(","))
    designs = Path(args.designs)
    store_designs(Path(args.root), designs, args.model)
    rows = [continuation_row(path, bands, args.near_mm) for path in sorted(designs.glob("*.npz"))]
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    groups = {"real": lambda c: c.endswith("_real"), "varied": lambda c: not c.endswith("_real"),
              "frontal": lambda c: c.endswith("_frontoorbital")}
    for key in list(rows[0])[1:]:
        means = "  ".join(f"{group} {np.mean([r[key] for r in rows if keep(r['case'])]):.4f}"
                          for group, keep in groups.items())
        print(f"{key:>14}  {means}")


def continuation_row(path: Path, bands_mm: tuple[float, ...], near_mm: float) -> dict:
    stored = np.load(path)
    bone, truth, design, spacing = stored["defective"], stored["truth"], stored["pred"], stored["spacing"]
    directions = stored["directions"] if "directions" in stored.files else np.diag(spacing)
    to_bone = ndimage.distance_transform_edt(~bone, sampling=spacing)
    row: dict = {"case": path.stem, "dsc": round(dsc(design, truth), 4)}
    for band in ORACLE_BANDS_MM:
        row[f"oracle_{band:g}"] = round(dsc(np.where(to_bone <= band, truth, design), truth), 4)
    for band, continued in continue_rim(bone, design, spacing, directions, to_bone, bands_mm, near_mm).items():
        row[f"continued_{band:g}"] = round(dsc(continued, truth), 4)
    print(" ".join(str(value) for value in row.values()), flush=True)
    return row


def continue_rim(bone: np.ndarray, design: np.ndarray, spacing: np.ndarray, directions: np.ndarray,
                 to_bone: np.ndarray, bands_mm: tuple[float, ...], near_mm: float = NEAR_DESIGN_MM) -> dict[float, np.ndarray]:
    """The design with its voxels within each band (mm) of the bone re-decided by the continued bone plate:
    {band: (X, Y, Z) bool}.

    bone, design: (X, Y, Z) bool crops; spacing (3,) mm; directions (3, 3), row i the world step (mm) of index
    axis i; to_bone: distance (mm) from each voxel to the bone; near_mm: voxels farther than this from the design
    keep the design's answer.
    """
    outside = ndimage.distance_transform_edt(~design, sampling=spacing)
    signed_design = np.where(design, -ndimage.distance_transform_edt(design, sampling=spacing), outside)
    points, normals = _bone_surface(bone, spacing, directions, (outside <= FIT_REACH_MM) & (outside > CUT_FACE_MM))
    voxels = np.argwhere(~bone & (to_bone <= max(bands_mm)) & (outside <= near_mm))
    if len(voxels) == 0 or len(points) < NEIGHBOURS:
        return {band: design for band in bands_mm}
    world = voxels @ directions
    distance, nearest = cKDTree(points).query(world, k=NEIGHBOURS)
    weight = np.exp(-((distance / WEIGHT_MM) ** 2))  # (V, k)
    near_normals = normals[nearest]  # (V, k, 3)
    _, vectors = np.linalg.eigh(np.einsum("vk,vki,vkj->vij", weight, near_normals, near_normals))
    axis = vectors[:, :, 2]  # the plate's normal axis (either sign)
    facing = np.einsum("vki,vi->vk", near_normals, axis)
    height = np.einsum("vki,vki->vk", world[:, None, :] - points[nearest], near_normals)  # above each tangent plane
    sides = []
    found = np.ones(len(voxels), dtype=bool)
    for sign in (1.0, -1.0):
        side_weight = weight * (sign * facing >= SIDE_COSINE)
        total = side_weight.sum(axis=1)
        found &= total > 1e-3 * weight.sum(axis=1)
        sides.append((side_weight * height).sum(axis=1) / np.maximum(total, 1e-12))
    signed_plate = np.maximum(sides[0], sides[1])  # under both surfaces: inside
    index = tuple(voxels.T)
    results = {}
    for band in bands_mm:
        blend = np.where(found, np.clip(1.0 - to_bone[index] / band, 0.0, 1.0), 0.0)
        result = design.copy()
        result[index] = blend * signed_plate + (1.0 - blend) * signed_design[index] < 0
        results[band] = result
    return results


def _bone_surface(bone: np.ndarray, spacing: np.ndarray, directions: np.ndarray,
                  where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3) world mm, unit normals out of the bone (N, 3)) of the bone's surface voxels in `where`, a
    third of them (a fixed draw). Normals from the bone's Gaussian-smoothed mask (sigma 1 mm); each point moved
    from its voxel centre out by half the voxel's extent along its normal, onto the face between bone and air."""
    surface = bone & ~ndimage.binary_erosion(bone) & where
    smooth = ndimage.gaussian_filter(bone.astype(np.float32), 1.0 / np.asarray(spacing))
    index = np.argwhere(surface)
    index = index[np.random.default_rng(0).permutation(len(index))[: len(index) // 3]]
    gradient = np.stack([g[tuple(index.T)] for g in np.gradient(smooth)], axis=1)  # per index axis
    world_gradient = np.linalg.solve(directions, gradient.T).T  # per mm: directions @ it = the index gradient
    normals = -world_gradient / np.maximum(np.linalg.norm(world_gradient, axis=1, keepdims=True), 1e-12)
    half_voxel = 0.5 * np.linalg.norm(normals @ directions.T, axis=1)  # per axis: (directions @ normal)
    return index @ directions + half_voxel[:, None] * normals, normals


if __name__ == "__main__":
    main()
