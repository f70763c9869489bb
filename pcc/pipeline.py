"""The implant pipeline: defective skull volume → surface cloud → network → points → implant volume.

    from pcc.pipeline import load_model, design_implant
    model = load_model()                       # shipped weights, or load_model("run.ckpt")
    implant = design_implant(defective, model) # a Volume on the input's own grid

Stages: the skull's surface is sampled (world mm); the global network places a frame on each defect
(run on settings.global_passes resamplings of the skull, the most central prediction kept, or the next
distinct one when it lies on intact bone);
the local network predicts the implant's surface points with normals in that frame (several
resamplings of the input, every other one mirrored, merged, the frame re-fitted to the prediction; a
local network built with prior=True also gets the skull's mirror image aligned around the frame,
pcc.symmetry);
the points are voxelized on the input's grid (pcc.voxelize); clean-up smooths that solid (Gaussian,
surface_smoothing_mm) after dropping what lies beyond implant_reach_mm of the points, joins it to the
bone rim (closing of implant ∪ skull), subtracts the skull and drops thin slivers away from the
implant's body (sliver_mm) and small fragments. A second search runs the same stages on the skull
completed with that implant (search_rounds), for a defect the first passed over. Every setting lives in
pcc.settings.DesignSettings, which the weights file carries.
"""

from __future__ import annotations

import importlib
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from torch import nn

from pcc.cloud import PointCloud
from pcc.errors import InputError
from pcc.frames import crop_and_sample, defect_frame, global_frame
from pcc.models import network_state, state_digest
from pcc.network_inputs import NETWORK_SURFACE_SMOOTHING, SKULL_POINTS, SampleSizes
from pcc.settings import DesignSettings
from pcc.volume import Volume, require_binary

SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "skullfix.pt"


@dataclass
class CompletionModel:
    """The two networks of a trained model, on one device, in eval mode."""

    global_net: nn.Module
    local_net: nn.Module
    device: torch.device
    source: Path
    sizes: SampleSizes = field(default_factory=SampleSizes)
    metadata: dict = field(default_factory=dict)
    settings: DesignSettings = field(default_factory=DesignSettings)


def resolve_device(requested: str = "auto") -> torch.device:
    """'auto' → the first GPU when there is one, else the CPU; 'cuda' without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        suffix = requested[len("cuda"):]
        if suffix and not (suffix.startswith(":") and suffix[1:].isdigit()):
            raise InputError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N")
        if not torch.cuda.is_available():
            raise InputError(f"--device {requested} was asked for but no CUDA GPU is available; use --device cpu or auto")
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {requested}: this machine has {torch.cuda.device_count()} GPU(s)")
        return torch.device(requested)
    if requested == "cpu":
        return torch.device("cpu")
    raise InputError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N")


def load_model(path: str | Path | None = None, *, device: str = "auto") -> CompletionModel:
    """Load shipped weights (path None) or a training checkpoint (.ckpt) / exported .pt file, offline."""
    source = Path(path) if path is not None else SHIPPED_WEIGHTS
    if not source.is_file():
        raise InputError(f"model file {source} not found; give --model PATH of a pcc checkpoint")
    target = resolve_device(device)
    try:
        # weights_only: tensors and plain containers only; a file that would run code on unpickling is refused
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
        nets = {name: _instantiate(spec) for name, spec in checkpoint["pcc_networks"].items()}
        state = checkpoint["state_dict"]
        recorded = checkpoint.get("pcc_metadata", {}).get("weights_sha256")
        if recorded is not None and state_digest(state) != recorded:
            raise InputError(f"{source} is damaged: its weights' SHA-256 differs from the one recorded in its "
                             "metadata; download or export the weights again")
        for name, net in nets.items():
            net.load_state_dict(network_state(state, name))
    except InputError:
        raise
    except pickle.UnpicklingError:
        raise InputError(f"{source} is not a pcc model: it holds objects other than tensors and plain values "
                         "(such a file could run code when read, so it is not opened); give a pcc weights file "
                         "or a checkpoint of pcc train") from None
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(f"{source} is not a pcc model checkpoint ({type(error).__name__}: {first_line})") from None
    for net in nets.values():
        net.to(target).eval()
    sizes = SampleSizes(**checkpoint.get("pcc_sizes", {}))
    try:
        settings = DesignSettings.from_dict(checkpoint.get("pcc_settings"))
    except (TypeError, ValueError) as error:
        raise InputError(f"{source}: its design settings cannot be read ({error}); use a newer pcc or export the "
                         "weights again") from None
    return CompletionModel(nets["global_net"], nets["local_net"], target, source, sizes,
                           checkpoint.get("pcc_metadata", {}), settings)


def _instantiate(spec: dict) -> nn.Module:
    module_name, _, class_name = spec["class_path"].rpartition(".")
    if not module_name.startswith("pcc."):
        raise ValueError(f"network class {spec['class_path']} is not a pcc network")
    return getattr(importlib.import_module(module_name), class_name)(**spec["init_args"])


@torch.no_grad()
def predict_implant_cloud(
    global_net: nn.Module,
    local_net: nn.Module,
    skull_points: np.ndarray,
    skull_normals: np.ndarray,
    *,
    settings: DesignSettings = DesignSettings(),
    seed: int = 0,
    sizes: SampleSizes = SampleSizes(),
    bone: Volume | None = None,
    intact_bone_mm: float | None = None,
    other_guesses: bool = True,
) -> PointCloud:
    """Predicted implant surface points (world mm) with outward normals, from the skull's surface cloud.

    The global stage's coarse points are split into separate defects (split_defects); each gets its
    own local frame and local predictions, and the points of all defects are returned together.
    settings: local_passes (resamplings of the local input whose predictions are merged),
    frame_refinements (extra local predictions, each in the frame fitted to the previous one's points),
    global_passes (resamplings of the global input, of whose predictions the most central is used),
    mirror_passes (mirror every other local resampling left-right, x of the frame, and its prediction
    back), defect_gap_mm and min_defect_fraction (split_defects);
    bone: the defective skull volume; defects on intact bone (is_intact_bone with intact_bone_mm,
    default settings.intact_bone_mm) are dropped (None keeps every defect);
    other_guesses: when every defect of the most central guess is intact bone, try the other guesses,
    most central first, each farther than settings.defect_gap_mm from those tried, until one is not.
    A local_net with prior=True gets sizes.prior_input points of the skull's mirror image, aligned on the
    whole skull once and around each frame again (pcc.symmetry), cropped like its skull input.
    """
    device = next(local_net.parameters()).device
    passes, global_passes = settings.local_passes, settings.global_passes
    intact_bone_mm = settings.intact_bone_mm if intact_bone_mm is None else intact_bone_mm
    rng = np.random.default_rng(seed)
    g_frame = global_frame(skull_points)
    replace = len(skull_points) < sizes.global_input
    g_inputs = []
    for _ in range(global_passes):
        chosen = rng.choice(len(skull_points), sizes.global_input, replace=replace)
        g_inputs.append(np.hstack([g_frame.to_local(skull_points[chosen]), skull_normals[chosen]]))
    coarse, _, _ = global_net(torch.from_numpy(np.stack(g_inputs).astype(np.float32)).to(device))
    candidates = [g_frame.to_world(c) for c in coarse.double().cpu().numpy()]
    order = centrality_order(candidates)
    flip = _mirror_signs(passes, settings.mirror_passes)
    whole_mirror = None
    if getattr(local_net, "prior", False):
        from pcc import symmetry

        whole_mirror = symmetry.whole_skull_mirror(skull_points, skull_normals)

    def prior_input(frame) -> torch.Tensor | None:
        """(passes, prior_input, 6) aligned mirror image around the frame, or None for a network without the prior."""
        if whole_mirror is None:
            return None
        fit = symmetry.local_mirror(skull_points, skull_normals, whole_mirror, frame.centre, frame.scale)
        points, normals = symmetry.mirrored_points(skull_points, skull_normals, fit)
        prior = np.stack([crop_and_sample(points, normals, frame, sizes.prior_input, rng) for _ in range(passes)])
        return torch.from_numpy((prior * flip).astype(np.float32)).to(device)

    def local_stage(guess: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(points, normals) in world mm of each defect of one global guess that is not intact bone."""
        found = []
        for defect in split_defects(guess, gap_mm=settings.defect_gap_mm, min_fraction=settings.min_defect_fraction):
            frame = defect_frame(defect)
            for _ in range(settings.frame_refinements + 1):  # each local prediction re-centres the frame on the hole
                inputs = np.stack([crop_and_sample(skull_points, skull_normals, frame, sizes.local_input, rng) for _ in range(passes)])
                network_input = torch.from_numpy((inputs * flip).astype(np.float32)).to(device)
                prior = prior_input(frame)
                _, fine, fine_normals = local_net(network_input) if prior is None else local_net(network_input, prior)
                predicted = frame.to_world((fine.double().cpu().numpy() * flip[:, :, :3]).reshape(-1, 3))
                frame = defect_frame(predicted)
            if bone is None or not is_intact_bone(predicted, bone, intact_bone_mm):
                found.append((predicted, (fine_normals.double().cpu().numpy() * flip[:, :, :3]).reshape(-1, 3)))
        return found

    found = local_stage(candidates[order[0]])
    if not found and bone is not None and other_guesses:
        tried = [candidates[order[0]].mean(axis=0)]
        for index in order[1:]:
            centre = candidates[index].mean(axis=0)
            if min(np.linalg.norm(centre - t) for t in tried) < settings.defect_gap_mm:
                continue
            tried.append(centre)
            found = local_stage(candidates[index])
            if found:
                break
    if not found:
        return PointCloud(np.zeros((0, 3)), np.zeros((0, 3)))
    return PointCloud(np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found]))


def _mirror_signs(passes: int, mirror: bool) -> np.ndarray:
    """(passes, 1, 6) factors that negate x and the normal's x of every other pass (all ones without mirror)."""
    signs = np.ones((passes, 1, 6))
    if mirror:
        signs[1::2, :, [0, 3]] = -1.0
    return signs


def is_intact_bone(points: np.ndarray, bone: Volume, distance_mm: float) -> bool:
    """Whether half or more of the world-mm points lie within distance_mm of the centre of a nonzero voxel of
    `bone` (their median distance from bone is below distance_mm): predicted implant points on intact bone."""
    return len(points) > 0 and share_near_bone(points, bone, distance_mm) >= 0.5


def share_near_bone(points: np.ndarray, bone: Volume, distance_mm: float) -> float:
    """Share of world-mm points within distance_mm of the centre of a nonzero voxel of `bone` (voxels off the
    grid are not bone). Only the bone voxels in the points' box widened by distance_mm are looked at."""
    if not len(points):
        return 0.0
    lower, upper = bone.index_box(points.min(axis=0) - distance_mm, points.max(axis=0) + distance_mm)
    if np.any(upper <= lower):
        return 0.0
    voxels = np.argwhere(np.asarray(bone.array)[tuple(slice(a, b) for a, b in zip(lower, upper))] != 0) + lower
    if not len(voxels):
        return 0.0
    distance, _ = cKDTree(bone.index_to_world(voxels)).query(points)
    return float(np.mean(distance <= distance_mm))


def centrality_order(candidates: list[np.ndarray]) -> np.ndarray:
    """Indices of the point sets (each (M, 3) mm), smallest summed Chamfer distance to the others first.

    The global stage's guesses of where the defect lies vary with the resampling of its input; the
    first (the medoid) is the guess most of the others agree with, so a single stray guess is outvoted.
    """
    if len(candidates) == 1:
        return np.zeros(1, dtype=np.int64)
    trees = [cKDTree(c) for c in candidates]
    # one_sided[i, j]: mean distance from the points of set i to their nearest point of set j
    one_sided = np.array([[trees[j].query(c)[0].mean() if j != i else 0.0 for j in range(len(candidates))]
                          for i, c in enumerate(candidates)])
    return np.argsort((one_sided + one_sided.T).sum(axis=1), kind="stable")


def split_defects(coarse_points: np.ndarray, *, gap_mm: float = DesignSettings.defect_gap_mm,
                  min_fraction: float = DesignSettings.min_defect_fraction) -> list[np.ndarray]:
    """The global stage's coarse points (world mm) grouped into separate defects, largest first.

    Points joined by a chain of steps shorter than gap_mm are one defect; groups with fewer than
    min_fraction of the points are dropped as stray points (the largest group is always kept).
    """
    pairs = cKDTree(coarse_points).query_pairs(gap_mm, output_type="ndarray")
    n = len(coarse_points)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels, minlength=count)
    order = np.argsort(-sizes, kind="stable")
    return [coarse_points[labels == k] for i, k in enumerate(order) if i == 0 or sizes[k] >= min_fraction * n]


def implant_from_points(
    cloud: PointCloud,
    defective: Volume,
    *,
    settings: DesignSettings = DesignSettings(),
    cleanup: bool = True,
) -> np.ndarray:
    """Voxelize predicted implant points on the defective skull's grid and clean up: (X, Y, Z) bool.

    settings: point_smoothing_mm (the surface step, smooth_points), kernel_neighbours (the voxelizer),
    and the clean-up's implant_reach_mm, surface_smoothing_mm (Gaussian sigma of the solid),
    rim_closing_mm (closing radius) and sliver_mm. With cleanup=False the result is the voxelized
    points minus the skull (for ablations).
    """
    from pcc.masks import bounding_box
    from pcc.voxelize import points_to_volume

    skull = defective.mask()
    if len(cloud) == 0:  # every predicted defect was intact bone
        return np.zeros_like(skull)
    if settings.point_smoothing_mm > 0:
        cloud = smooth_points(cloud, settings.point_smoothing_mm)
    solid = points_to_volume(cloud, defective, neighbours=settings.kernel_neighbours).mask()
    if not cleanup or not solid.any():
        return solid & ~skull
    radius = _radius_voxels(settings.rim_closing_mm, defective)
    solid_lower, solid_upper = bounding_box(solid)
    lower = np.maximum(np.asarray(solid_lower) - 2 * radius - 2, 0)
    upper = np.minimum(np.asarray(solid_upper) + 2 * radius + 2, skull.shape)
    box = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
    ball = _ball(radius)
    solid_box = within_reach(solid[box], cloud.points - lower @ defective.directions, defective, settings.implant_reach_mm)
    # The network's points are noisy at the sub-millimetre scale: smooth the solid before joining it to bone.
    sigma = settings.surface_smoothing_mm / np.asarray(defective.spacing)
    solid_box = ndimage.gaussian_filter(solid_box.astype(np.float32), sigma) > 0.5
    union = np.pad(solid_box | skull[box], radius)
    closed = ndimage.binary_closing(union, structure=ball)[tuple(slice(radius, -radius) for _ in range(3))]
    implant_box = ndimage.binary_fill_holes(closed & ~skull[box]) & ~skull[box]
    implant_box = drop_fragments(drop_slivers(implant_box, _radius_voxels(settings.sliver_mm, defective)))
    implant = np.zeros_like(skull)
    implant[box] = implant_box
    return implant


def smooth_points(cloud: PointCloud, radius_mm: float, *, max_neighbours: int = 48) -> PointCloud:
    """The surface step: each point moved along its own normal onto the least-squares plane of its
    nearest points (at most max_neighbours) within radius_mm (world mm); normals are kept. Points with
    fewer than 6 such neighbours, or whose normal lies nearly in the fitted plane (an edge or a fold),
    do not move.
    """
    points = np.asarray(cloud.points, dtype=np.float64)
    normals = np.asarray(cloud.normals, dtype=np.float64)
    k = min(max_neighbours, len(points))
    if k < 6:
        return cloud
    distance, index = cKDTree(points).query(points, k=k, distance_upper_bound=radius_mm)
    near = np.isfinite(distance)  # (N, k): a neighbour within radius_mm
    count = near.sum(axis=1)
    neighbours = points[np.where(near, index, 0)]  # (N, k, 3); missing ones are masked out below
    weights = near[..., None].astype(np.float64)
    centre = (neighbours * weights).sum(axis=1) / count[:, None]
    offsets = (neighbours - centre[:, None, :]) * weights
    covariance = np.einsum("nki,nkj->nij", offsets, offsets)
    _, vectors = np.linalg.eigh(covariance)
    plane_normal = vectors[:, :, 0]  # the eigenvector of the smallest eigenvalue
    along = np.einsum("ni,ni->n", normals, plane_normal)
    movable = (count >= 6) & (np.abs(along) >= 0.5)
    # p + t·n lies on the plane: (p + t·n − c)·m = 0
    step = np.einsum("ni,ni->n", points - centre, plane_normal) / np.where(movable, along, 1.0)
    moved = points - np.where(movable, step, 0.0)[:, None] * normals
    return PointCloud(moved, normals)


def _radius_voxels(radius_mm: float, grid: Volume) -> int:
    """A radius in mm as a whole number of the grid's finest voxels (at least 1)."""
    return max(1, int(round(radius_mm / float(grid.spacing.min()))))


def _ball(radius: int) -> np.ndarray:
    """The 6-connected structuring element of `radius` voxels (a diamond-like ball)."""
    return ndimage.iterate_structure(ndimage.generate_binary_structure(3, 1), radius)


def within_reach(mask: np.ndarray, points: np.ndarray, grid: Volume, distance_mm: float) -> np.ndarray:
    """The voxels of mask (on grid's geometry, index 0 at grid's origin) whose centres lie within
    distance_mm of some world-mm point."""
    voxels = np.argwhere(mask)
    distance, _ = cKDTree(points).query(grid.index_to_world(voxels), distance_upper_bound=distance_mm)
    kept = np.zeros_like(mask)
    kept[tuple(voxels[np.isfinite(distance)].T)] = True
    return kept


def drop_slivers(mask: np.ndarray, radius: int) -> np.ndarray:
    """The voxels of mask within 2·radius voxels of its opening by a ball of `radius` voxels: parts
    thinner than the ball are kept only next to the thicker body (where an implant thins out at the rim)."""
    ball = _ball(radius)
    body = ndimage.binary_opening(mask, structure=ball)
    return mask & ndimage.binary_dilation(body, structure=ball, iterations=2)


def drop_fragments(mask: np.ndarray) -> np.ndarray:
    """Keep the 26-connected components with at least a tenth of the largest one's voxels."""
    from pcc.masks import keep_large_components

    return keep_large_components(mask, keep_fraction=0.1, connectivity=3)


def no_defect_warning(implant: Volume, defective: Volume, settings: DesignSettings = DesignSettings()) -> str | None:
    """A warning when the implant is negligible (below settings.no_defect_max_mm3 and
    settings.no_defect_max_fraction of the skull's bone), else None."""
    volume_mm3 = float(np.count_nonzero(implant.array)) * implant.voxel_volume
    skull_mm3 = float(np.count_nonzero(defective.array)) * defective.voxel_volume
    limit = max(settings.no_defect_max_mm3, settings.no_defect_max_fraction * skull_mm3)
    if volume_mm3 >= limit:
        return None
    return (f"no defect found: the implant is {volume_mm3 / 1000:.2f} cm³, below {limit / 1000:.2f} cm³ "
            f"(1 cm³ or 0.5% of the skull's bone); check that the input is the skull with the defect")


def design_implant(
    defective: Volume,
    model: CompletionModel,
    *,
    settings: DesignSettings | None = None,
    timings: dict[str, float] | None = None,
    cleanup: bool = True,
) -> Volume:
    """The implant (uint8 0/1 Volume on the input's grid) for a binary defective skull volume.

    Args:
        defective: binary defective skull.
        model: from load_model.
        settings: the pipeline's settings; None takes those the model's weights carry (model.settings).
            search_rounds searches for defects: each after the first runs on the skull completed with
            the implant found so far, so a defect the global stage passed over (the second side of a
            bilateral defect) is found once the first is filled. The later searches sample its surface
            at later_rounds_surface_step, use only the most central global guess (predict_implant_cloud's
            other_guesses: False) and later_rounds_intact_bone_mm.
        timings: filled with seconds per stage (cloud, network, voxelize_cleanup; summed over rounds) when given.
        cleanup: join to the rim and drop fragments (False only for ablations).
    """
    settings = settings if settings is not None else getattr(model, "settings", None) or DesignSettings()
    timings = timings if timings is not None else {}
    require_binary(defective, "the defective skull")
    skull = defective.mask()
    implant = np.zeros_like(skull)
    for search in range(settings.search_rounds):
        searched = defective if search == 0 else defective.with_array((skull | implant).astype(np.uint8))
        later = search > 0
        cloud = implant_cloud(searched, model, settings=settings, timings=timings,
                              surface_step=settings.later_rounds_surface_step if later else 1, other_guesses=not later,
                              intact_bone_mm=settings.later_rounds_intact_bone_mm if later else settings.intact_bone_mm)
        start = time.perf_counter()
        found = implant_from_points(cloud, searched, settings=settings, cleanup=cleanup) if len(cloud) else None
        timings["voxelize_cleanup"] = timings.get("voxelize_cleanup", 0.0) + time.perf_counter() - start
        if found is None or not found.any():
            break
        implant |= found
    return defective.with_array(implant.astype(np.uint8))


def implant_cloud(defective: Volume, model: CompletionModel, *, settings: DesignSettings = DesignSettings(),
                  timings: dict[str, float] | None = None, surface_step: int = 1,
                  other_guesses: bool = True, intact_bone_mm: float | None = None) -> PointCloud:
    """Predicted implant points (world mm, with normals) of a binary defective skull: its surface
    sample through both networks, intact-bone guesses dropped (design_implant before voxelization).

    timings: seconds of the 'cloud' and 'network' stages are added to it when given;
    settings, other_guesses, intact_bone_mm: see predict_implant_cloud; surface_step: marching-cubes
    step of the surface sample.
    """
    from pcc.surface import volume_to_points

    timings = timings if timings is not None else {}
    start = time.perf_counter()
    skull = volume_to_points(defective, SKULL_POINTS, seed=0, step=surface_step, smoothing_voxels=NETWORK_SURFACE_SMOOTHING)
    timings["cloud"] = timings.get("cloud", 0.0) + time.perf_counter() - start
    start = time.perf_counter()
    cloud = predict_implant_cloud(model.global_net, model.local_net, skull.points, skull.normals, sizes=model.sizes,
                                  settings=settings, bone=defective, other_guesses=other_guesses,
                                  intact_bone_mm=intact_bone_mm)
    timings["network"] = timings.get("network", 0.0) + time.perf_counter() - start
    return cloud
