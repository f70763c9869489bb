"""The implant pipeline: defective skull volume → surface cloud → network → points → implant volume.

    from pcc.pipeline import load_model, design_implant
    model = load_model()                       # shipped weights, or load_model("run.ckpt")
    implant = design_implant(defective, model) # a Volume on the input's own grid

Stages: the skull's surface is sampled (world mm); the global network places a frame on each defect
(run on GLOBAL_PASSES resamplings of the skull, the most central prediction kept, or the next
distinct one when it lies on intact bone);
the local network predicts the implant's surface points with normals in that frame (several
resamplings of the input, every other one mirrored, merged, the frame re-fitted to the prediction; a
local network built with prior=True also gets the skull's mirror image aligned around the frame,
pcc.symmetry);
the points are voxelized on the input's grid (pcc.voxelize); clean-up smooths that solid (Gaussian,
SURFACE_SMOOTHING_MM) after dropping what lies beyond IMPLANT_REACH_MM of the points, joins it to the
bone rim (closing of implant ∪ skull), subtracts the skull and drops thin slivers away from the
implant's body (SLIVER_MM) and small fragments. A second search runs the same stages on the skull
completed with that implant (SEARCH_ROUNDS), for a defect the first passed over.
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
from pcc.volume import Volume, require_binary

SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "skullfix.pt"
LOCAL_PASSES = 4
# The global stage runs on this many resamplings of the skull; the prediction that agrees best with
# the others is used (GPU-trained weights, 70 varied defects in the validation skulls: mean DSC
# 0.738 → 0.750, cases at DSC 0: 5 → 3; tools/bench_robustness.py).
GLOBAL_PASSES = 8
FRAME_REFINEMENTS = 2
# Every other resampling of the local stage is mirrored left-right before the network and its output
# mirrored back: a skull's mirror image is another plausible skull, so the two halves' errors differ.
# (Mirroring the global stage's resamplings too made the kept guesses on two complete skulls lie less
# in bone, 39 and 49 % instead of 63 and 52 %, so that they passed the intact-bone rule of then: not done.)
MIRROR_PASSES = True
# Coarse points of the global stage farther than DEFECT_GAP_MM from all others start another defect
# (its own local frame); groups below MIN_DEFECT_FRACTION of the points are stray points.
DEFECT_GAP_MM = 20.0
MIN_DEFECT_FRACTION = 0.03
# A predicted defect is intact bone (a guess of the global stage where there is no hole) when half or
# more of its implant points lie within INTACT_BONE_DISTANCE_MM of a bone voxel: an implant fills a
# hole, so most of its surface lies away from the bone, while a guess on intact bone hugs it.
# Measured with the shipped weights (GPU fine-tune) on the validation skulls (real and 70 varied defects) and on 25
# complete skulls (10 validation, 15 training), every local prediction of both searches: the median
# distance from bone was 1.7–9.9 mm where there was a hole (1.7: a 20 mm ball) and 0.23–1.35 mm on
# intact bone (the share of points inside bone, the rule before, overlapped: 0.19–0.96 vs 0.04–0.28).
INTACT_BONE_DISTANCE_MM = 1.5
# The later searches (SEARCH_ROUNDS) look only for a defect the first passed over (the second side of
# a bilateral defect), so they use a wider distance: in the same log both sides of every bilateral
# defect had a median distance from bone of 4.0–6.8 mm, while a later search's guess on intact bone
# reached 1.5 mm once the voxelizer's kernel was widened (a 7 cm³ false implant 65 mm from the
# craniotomy of varied case 018; intact bone elsewhere: 0.23–1.35 mm).
LATER_ROUNDS_INTACT_BONE_MM = 2.5
# Searches for defects per input (design_implant's rounds). The searches after the first run on the
# skull completed with the defects found, so a defect the first search passed over is found then.
SEARCH_ROUNDS = 2
# The later searches sample the completed skull's surface from marching cubes at this step (voxels):
# 0.4 s instead of 1.2 s on a 512×512×Z skull; the first search, which designs most implants, uses 1.
LATER_ROUNDS_SURFACE_STEP = 2
RIM_CLOSING_MM = 1.5
# Parts of the implant thinner than about twice SLIVER_MM (an opening with a ball of this radius removes
# them) are dropped where they reach farther than twice SLIVER_MM from the implant's body: the thin
# shells that form where predicted points run along intact bone, never the implant's edges at the rim.
# Chosen on 5 varied defects of the validation skulls with such shells (bilateral 048: DSC 0.678 →
# 0.703, HD95 24 → 9.6 mm; parietotemporal 096: 0.699 → 0.727, 11.4 → 2.8 mm); the 10 real SkullFix
# validation cases changed by at most 0.001 DSC. A plain opening by the same ball, without keeping
# the rim, cost them 0.005 DSC and 0.009 bDSC on average.
SLIVER_MM = 1.0
# Voxels of the voxelized solid farther than IMPLANT_REACH_MM from every predicted point are dropped:
# an implant is a plate whose both surfaces are predicted, so its inside lies within half its
# thickness of a point; farther voxels are regions that the voxelizer's fill reached through gaps of
# a noisy prediction. Tried 4, 6 and 8 mm on 8 varied defects of the validation skulls: 4 mm gave
# frontoorbital 081 0.239 → 0.288, bilateral 048 0.703 → 0.736 (HD95 9.6 → 2.5 mm); every setting left
# the 10 real SkullFix validation cases unchanged.
IMPLANT_REACH_MM = 4.0
# The voxelizer's kernel reaches about this many predicted points (pcc.voxelize.points_to_volume's
# neighbours; its default of 8 suits clean surface samples): a wider kernel averages the network's
# sub-millimetre noise. Measured with the shipped weights on the first search's points of the 10 real
# and 70 varied defects of the validation skulls: varied mean DSC 0.855 (8) → 0.857 (16) → 0.858 (32);
# on 41 of them 0.862 (8), 0.865 (32), 0.866 (64); the real cases unchanged (±0.001). 64 costs 2 s
# more per case than 8, 32 about 0.9 s.
IMPLANT_KERNEL_NEIGHBOURS = 32
# Chosen on the validation split with an earlier model (0.5 → DSC 0.895, 1.0 → 0.898, 2.0 → 0.895);
# tools/sweep_cleanup.py with the shipped model: every setting within 0.007 (docs/sweep_cleanup_cpu.txt).
SURFACE_SMOOTHING_MM = 1.0
# An implant below both floors is no implant: the input most likely has no defect. 1 cm³ is a disc of
# 15 mm across in 6 mm bone (a burr hole, which gets no custom implant); 0.5 % of the skull's bone is
# 2–3.5 cm³ on SkullFix skulls, whose implants are 30–65 cm³ (7–11 %) and whose smallest synthetic
# defects (a 20 mm ball, a 40 mm cube) still take about 7 cm³.
NO_DEFECT_MAX_MM3 = 1000.0
NO_DEFECT_MAX_FRACTION = 0.005


@dataclass
class CompletionModel:
    """The two networks of a trained model, on one device, in eval mode."""

    global_net: nn.Module
    local_net: nn.Module
    device: torch.device
    source: Path
    sizes: SampleSizes = field(default_factory=SampleSizes)
    metadata: dict = field(default_factory=dict)


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
    return CompletionModel(nets["global_net"], nets["local_net"], target, source, sizes, checkpoint.get("pcc_metadata", {}))


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
    passes: int = LOCAL_PASSES,
    refinements: int = FRAME_REFINEMENTS,
    global_passes: int = GLOBAL_PASSES,
    seed: int = 0,
    sizes: SampleSizes = SampleSizes(),
    bone: Volume | None = None,
    intact_bone_mm: float = INTACT_BONE_DISTANCE_MM,
    other_guesses: bool = True,
    mirror: bool = MIRROR_PASSES,
) -> PointCloud:
    """Predicted implant surface points (world mm) with outward normals, from the skull's surface cloud.

    The global stage's coarse points are split into separate defects (split_defects); each gets its
    own local frame and local predictions, and the points of all defects are returned together.
    passes: resamplings of the local input whose predictions are merged;
    refinements: extra local predictions, each in the frame fitted to the previous one's points;
    global_passes: resamplings of the global input, of whose predictions the most central is used;
    bone: the defective skull volume; defects on intact bone (is_intact_bone with intact_bone_mm) are
    dropped (None keeps every defect);
    other_guesses: when every defect of the most central guess is intact bone, try the other guesses,
    most central first, each farther than DEFECT_GAP_MM from those tried, until one is not;
    mirror: mirror every other local resampling left-right (x of the frame) and its prediction back.
    A local_net with prior=True gets sizes.prior_input points of the skull's mirror image, aligned on the
    whole skull once and around each frame again (pcc.symmetry), cropped like its skull input.
    """
    device = next(local_net.parameters()).device
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
    flip = _mirror_signs(passes, mirror)
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
        for defect in split_defects(guess):
            frame = defect_frame(defect)
            for _ in range(refinements + 1):  # each local prediction re-centres the frame on the hole
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
            if min(np.linalg.norm(centre - t) for t in tried) < DEFECT_GAP_MM:
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


def is_intact_bone(points: np.ndarray, bone: Volume, distance_mm: float = INTACT_BONE_DISTANCE_MM) -> bool:
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


def split_defects(coarse_points: np.ndarray, *, gap_mm: float = DEFECT_GAP_MM,
                  min_fraction: float = MIN_DEFECT_FRACTION) -> list[np.ndarray]:
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
    cleanup: bool = True,
    smoothing_mm: float = SURFACE_SMOOTHING_MM,
    rim_closing_mm: float = RIM_CLOSING_MM,
) -> np.ndarray:
    """Voxelize predicted implant points on the defective skull's grid and clean up: (X, Y, Z) bool.

    With cleanup=False the result is the voxelized points minus the skull (for ablations);
    smoothing_mm (Gaussian sigma of the solid) and rim_closing_mm (closing radius) set the clean-up.
    """
    from pcc.surface import bounding_box
    from pcc.voxelize import points_to_volume

    skull = defective.mask()
    if len(cloud) == 0:  # every predicted defect was intact bone
        return np.zeros_like(skull)
    solid = points_to_volume(cloud, defective, neighbours=IMPLANT_KERNEL_NEIGHBOURS).mask()
    if not cleanup or not solid.any():
        return solid & ~skull
    radius = _radius_voxels(rim_closing_mm, defective)
    solid_lower, solid_upper = bounding_box(solid)
    lower = np.maximum(np.asarray(solid_lower) - 2 * radius - 2, 0)
    upper = np.minimum(np.asarray(solid_upper) + 2 * radius + 2, skull.shape)
    box = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
    ball = _ball(radius)
    solid_box = within_reach(solid[box], cloud.points - lower @ defective.directions, defective, IMPLANT_REACH_MM)
    # The network's points are noisy at the sub-millimetre scale: smooth the solid before joining it to bone.
    sigma = smoothing_mm / np.asarray(defective.spacing)
    solid_box = ndimage.gaussian_filter(solid_box.astype(np.float32), sigma) > 0.5
    union = np.pad(solid_box | skull[box], radius)
    closed = ndimage.binary_closing(union, structure=ball)[tuple(slice(radius, -radius) for _ in range(3))]
    implant_box = ndimage.binary_fill_holes(closed & ~skull[box]) & ~skull[box]
    implant_box = _drop_fragments(drop_slivers(implant_box, _radius_voxels(SLIVER_MM, defective)))
    implant = np.zeros_like(skull)
    implant[box] = implant_box
    return implant


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


def _drop_fragments(mask: np.ndarray, *, keep_fraction: float = 0.1) -> np.ndarray:
    """Keep 26-connected components with at least keep_fraction of the largest one's voxels."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = sizes >= keep_fraction * sizes.max()
    keep[0] = False
    return keep[labels]


def no_defect_warning(implant: Volume, defective: Volume) -> str | None:
    """A warning when the implant is negligible (see NO_DEFECT_MAX_MM3), else None."""
    volume_mm3 = float(np.count_nonzero(implant.array)) * implant.voxel_volume
    skull_mm3 = float(np.count_nonzero(defective.array)) * defective.voxel_volume
    limit = max(NO_DEFECT_MAX_MM3, NO_DEFECT_MAX_FRACTION * skull_mm3)
    if volume_mm3 >= limit:
        return None
    return (f"no defect found: the implant is {volume_mm3 / 1000:.2f} cm³, below {limit / 1000:.2f} cm³ "
            f"(1 cm³ or 0.5% of the skull's bone); check that the input is the skull with the defect")


def design_implant(
    defective: Volume,
    model: CompletionModel,
    *,
    timings: dict[str, float] | None = None,
    passes: int = LOCAL_PASSES,
    cleanup: bool = True,
    rounds: int = SEARCH_ROUNDS,
) -> Volume:
    """The implant (uint8 0/1 Volume on the input's grid) for a binary defective skull volume.

    Args:
        defective: binary defective skull.
        model: from load_model.
        timings: filled with seconds per stage (cloud, network, voxelize_cleanup; summed over rounds) when given.
        passes: resamplings of the local input whose predictions are merged (more points, less noise).
        cleanup: join to the rim and drop fragments (False only for ablations).
        rounds: searches for defects; each after the first runs on the skull completed with the implant
            found so far, so a defect the global stage passed over (the second side of a bilateral
            defect) is found once the first is filled. The later searches sample its surface at
            LATER_ROUNDS_SURFACE_STEP, use only the most central global guess
            (predict_implant_cloud's other_guesses: False) and LATER_ROUNDS_INTACT_BONE_MM.
    """
    timings = timings if timings is not None else {}
    require_binary(defective, "the defective skull")
    skull = defective.mask()
    implant = np.zeros_like(skull)
    for search in range(rounds):
        searched = defective if search == 0 else defective.with_array((skull | implant).astype(np.uint8))
        later = search > 0
        cloud = implant_cloud(searched, model, passes=passes, timings=timings,
                              surface_step=LATER_ROUNDS_SURFACE_STEP if later else 1, other_guesses=not later,
                              intact_bone_mm=LATER_ROUNDS_INTACT_BONE_MM if later else INTACT_BONE_DISTANCE_MM)
        start = time.perf_counter()
        found = implant_from_points(cloud, searched, cleanup=cleanup) if len(cloud) else None
        timings["voxelize_cleanup"] = timings.get("voxelize_cleanup", 0.0) + time.perf_counter() - start
        if found is None or not found.any():
            break
        implant |= found
    return defective.with_array(implant.astype(np.uint8))


def implant_cloud(defective: Volume, model: CompletionModel, *, passes: int = LOCAL_PASSES,
                  timings: dict[str, float] | None = None, surface_step: int = 1,
                  other_guesses: bool = True, intact_bone_mm: float = INTACT_BONE_DISTANCE_MM) -> PointCloud:
    """Predicted implant points (world mm, with normals) of a binary defective skull: its surface
    sample through both networks, intact-bone guesses dropped (design_implant before voxelization).

    timings: seconds of the 'cloud' and 'network' stages are added to it when given;
    other_guesses, intact_bone_mm: see predict_implant_cloud; surface_step: marching-cubes step of the
    surface sample.
    """
    from pcc.surface import volume_to_points

    timings = timings if timings is not None else {}
    start = time.perf_counter()
    skull = volume_to_points(defective, SKULL_POINTS, seed=0, step=surface_step, smoothing_voxels=NETWORK_SURFACE_SMOOTHING)
    timings["cloud"] = timings.get("cloud", 0.0) + time.perf_counter() - start
    start = time.perf_counter()
    cloud = predict_implant_cloud(model.global_net, model.local_net, skull.points, skull.normals, sizes=model.sizes,
                                  passes=passes, bone=defective, other_guesses=other_guesses,
                                  intact_bone_mm=intact_bone_mm)
    timings["network"] = timings.get("network", 0.0) + time.perf_counter() - start
    return cloud
