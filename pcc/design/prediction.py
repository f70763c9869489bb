"""Prediction of the implant's surface points from the skull's surface cloud (both networks).

The global network places a frame on each defect (run on settings.global_passes resamplings of the
skull, the most central prediction kept, or the next distinct one when it lies on intact bone); the
local network predicts the implant's surface points with normals in that frame (several resamplings
of the input, every other one mirrored, merged, the frame re-fitted to the prediction; a local
network built with prior=True also gets the skull's mirror image aligned around the frame,
pcc.geometry.symmetry).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from torch import nn

from pcc.design.settings import DesignSettings
from pcc.geometry.cloud import PointCloud
from pcc.geometry.frames import crop_and_sample, defect_frame, global_frame
from pcc.geometry.masks import near_mask
from pcc.models.inputs import SampleSizes
from pcc.volume import Volume

# Guesses of the global stage whose centres lie closer than this (mm) are the same guess (not tried twice).
DISTINCT_GUESS_MM = 5.0


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
    other_guesses: when every defect of the most central guess is intact bone, try every other distinct
    guess (starting DISTINCT_GUESS_MM or more from those tried), most central first, until one is not.
    Neither where a guess starts nor where its local stage ends tells whether another guess nearby
    would find the hole: a guess 12 mm off the hole can lead the frame refinements onto intact bone
    while one 5 mm off finds it, and a local stage can end at the hole with its points just over the
    intact-bone share (thin frontal bone), where another sample of the same place does not.
    A local_net with prior=True gets sizes.prior_input points of the skull's mirror image, aligned on the
    whole skull once and around each frame again (pcc.geometry.symmetry), cropped like its skull input.
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
        from pcc.geometry import symmetry

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
            if min(np.linalg.norm(centre - start) for start in tried) < DISTINCT_GUESS_MM:
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
    grid are not bone; pcc.geometry.masks.near_mask)."""
    if not len(points):
        return 0.0
    return float(np.mean(near_mask(points, bone, distance_mm)))


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
