"""The plate a planner sends to the printer: uniform thickness under the predicted outer surface, and
perforations.

    check_plate_options(5.0, (2.0, 10.0), 5.0)            # InputError with one line when a value is bad
    plate = uniform_plate(implant, defective, 5.0)        # 5 mm under the implant's outer surface
    plan = plan_holes(plate, defective, 2.0, 10.0, 5.0)   # centres (world mm) on a 10 mm grid, normals
    plate = cut_holes(plate, plan)                        # 2 mm tunnels through the plate
    plan.report()                                         # {"count": N, "diameter_mm": 2.0, ...}
    plate_thickness_mm(plate, defective)                  # independent thickness estimate (mm), away from bone

Volumes are pcc.volume.Volume: binary (X, Y, Z) arrays on one grid; every length is in mm and every point
is in world mm of the grid's space (sheared and anisotropic grids included).

Which face is "outer": each background voxel touching the implant is on the outer side when the step to
it from the implant goes along the outward normal of the nearest vertex of the convex hull of the complete
skull (defective ∪ implant), on the inner side when against it (steps within 60° of square to that normal,
the staircase's risers and the implant's sides at the rim, count for neither); each background component
then takes its majority where it has a clear one (the outside and the cranial cavity, when the implant
meets the bone all round). The hull, unlike the skull's centre, also works on a crop of a skull, and in
concave regions the hull's normal still points away from the inside.

Surfaces are sub-voxel: marching cubes of the mask smoothed by a Gaussian of one voxel (a binary
staircase reads distances too short by up to ~0.2 mm at 0.6 mm voxels); distances are measured from
voxel centres to dense points of that surface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, cKDTree

from pcc.errors import InputError
from pcc.geometry.masks import bounding_box, box_slices, keep_large_components
from pcc.volume import Volume

MAX_THICKNESS_MM = 15.0
HOLE_MIN_VOXELS = 2.0  # a hole narrower than this many (largest) voxels is not a clean tunnel (1.6 is not, at 1 mm)
HOLE_DEPTH_MM = 25.0  # how deep under its centre a hole is cut (deeper than any plate)
_SIX = ndimage.generate_binary_structure(3, 1)


@dataclass(frozen=True)
class HolePlan:
    """Perforations of a plate: centres_mm (N, 3) world mm on the outer surface, normals (N, 3) unit outward
    normals there (the drilling axes), diameter_mm, spacing_mm (grid step) and margin_mm (least distance
    from a centre to the bone)."""

    centres_mm: np.ndarray
    normals: np.ndarray
    diameter_mm: float
    spacing_mm: float
    margin_mm: float

    @property
    def count(self) -> int:
        return int(len(self.centres_mm))

    def report(self) -> dict:
        """The report's "holes" entry."""
        return {"count": self.count, "diameter_mm": float(self.diameter_mm), "spacing_mm": float(self.spacing_mm),
                "centres_mm": np.round(self.centres_mm, 3).tolist()}


def parse_holes(text: str) -> tuple[float, float]:
    """'D:S' (e.g. '2:10') → (diameter_mm, spacing_mm); InputError when it is not two numbers."""
    parts = str(text).split(":")
    try:
        diameter, spacing = (float(part) for part in parts)
    except ValueError:
        raise InputError(f"--holes takes DIAMETER:SPACING in mm, e.g. --holes 2:10, got {text!r}") from None
    return diameter, spacing


def check_plate_options(thickness_mm: float | None, holes: tuple[float, float] | None, margin_mm: float = 5.0) -> None:
    """Raise InputError (one line saying what to change) for a bad thickness (≤ 0 or > 15 mm), hole
    diameter/spacing (D ≤ 0, D ≥ S) or margin (< 0, or not more than the hole's radius so that a hole
    would open into the bone); None leaves that option out."""
    if thickness_mm is not None and not (math.isfinite(thickness_mm) and 0 < thickness_mm <= MAX_THICKNESS_MM):
        raise InputError(f"--thickness must be more than 0 and at most {MAX_THICKNESS_MM:g} mm, got {thickness_mm:g}: "
                         "give the plate's thickness in mm, e.g. --thickness 5")
    if holes is None:
        return
    diameter, spacing = (float(v) for v in holes)
    if not (math.isfinite(diameter) and math.isfinite(spacing) and diameter > 0 and spacing > 0):
        raise InputError(f"--holes needs a diameter and a spacing above 0 mm, got {diameter:g}:{spacing:g}: e.g. --holes 2:10")
    if diameter >= spacing:
        raise InputError(f"--holes {diameter:g}:{spacing:g}: the diameter must be smaller than the spacing "
                         "(holes would merge); e.g. --holes 2:10")
    if not (math.isfinite(margin_mm) and margin_mm > diameter / 2):
        raise InputError(f"--hole-margin must be more than half the hole diameter ({diameter / 2:g} mm) so that no "
                         f"hole reaches the bone, got {margin_mm:g}; e.g. --hole-margin 5")


def uniform_plate(implant: Volume, defective: Volume, thickness_mm: float) -> Volume:
    """The implant as a plate of uniform thickness under its outer surface (a uint8 Volume on its grid).

    Keeps the voxels whose centre lies within thickness_mm of the implant's outer surface (the face
    away from the skull's inside, see the module's docstring) and adds, where the implant is thinner,
    the non-bone voxels straight under that surface (along its inward normal) to that depth; never a
    bone voxel. The outer surface is that of the complete skull (implant ∪ bone) smoothed, so it runs on
    smoothly across the rim; the plate keeps its contact with the bone's edge there. Specks (face-connected
    parts under 1 % of the largest) are dropped.
    """
    check_plate_options(thickness_mm, None)
    _same_grid(implant, defective)
    spacing = implant.spacing
    step = float(spacing.max())
    crop = _Crop(implant, defective, np.ceil((thickness_mm + 3.0) / spacing).astype(int) + 2)
    plate, bone = crop.implant, crop.bone
    outer_mark, inner_mark = _sides(crop, _hull_normals(implant, defective))
    faces = _Faces(crop, plate | bone, outer_mark, inner_mark)
    # voxel-level distance to the nearest outer background voxel: the surface lies between, so the
    # distance to it is within a voxel below this one; only that band needs the exact distance
    near, mark = ndimage.distance_transform_edt(~outer_mark, sampling=spacing, return_indices=True)
    index = np.argwhere((plate | ~bone) & (near <= thickness_mm + step))
    coarse, own = near[tuple(index.T)], plate[tuple(index.T)]
    keep = own & (coarse <= thickness_mm)
    exact = own & ~keep
    # nothing is grown within a millimetre (at least a voxel) of the bone: there it wraps round the bone's edge in loops
    grown = np.flatnonzero(~own & (ndimage.distance_transform_edt(~bone, sampling=spacing)[tuple(index.T)] > max(1.0, step)))
    if len(grown):  # outside the implant: only voxels inward of their nearest outer background voxel
        nearest = mark[:, index[grown, 0], index[grown, 1], index[grown, 2]].T
        offset = crop.world(index[grown]) - crop.world(nearest)
        along = -np.einsum("ij,ij->i", offset, faces.normals_at(nearest))
        exact[grown[along >= 0.8 * np.linalg.norm(offset, axis=1)]] = True
    points, normals = faces.outer
    world = crop.world(index[exact])
    distance, nearest = cKDTree(points).query(world, distance_upper_bound=thickness_mm + step)
    ok = distance <= thickness_mm
    added = ~own[exact]
    if added.any():
        # an added voxel lies straight under its nearest outer point: on the inner side, along the
        # normal (points beside the surface's edge, e.g. under the bone at the rim, are off the normal)
        safe = np.where(ok, nearest, 0)
        along = -np.einsum("ij,ij->i", world - points[safe], normals[safe])
        ok &= ~added | (along >= 0.97 * distance)
    keep[exact] = ok
    out = np.zeros_like(plate)
    out[tuple(index[keep].T)] = True
    if not out.any():
        raise InputError("the plate is empty: the implant has no outer surface facing away from the skull")
    return crop.paste(keep_large_components(out, keep_fraction=0.01, connectivity=1))  # no specks at the rim


def plate_thickness_mm(implant: Volume, defective: Volume | None = None, *, min_rim_distance_mm: float = 5.0,
                       max_points: int = 50_000) -> np.ndarray:
    """(K,) thickness (mm) of the plate at its K voxels at least min_rim_distance_mm from the bone (an even
    subsample of at most max_points of them).

    Independent of pcc.outputs.printing's local thickness: at each voxel, the distance to the plate's
    outer face plus the distance to its inner face, both to a sub-voxel surface of the plate alone
    (marching cubes of the mask smoothed by one voxel, split into faces by the side of the background
    it bounds). Exact for a flat or concentric-spherical plate; within 0.05 mm of the truth on voxelised
    spherical shells 3–7 mm thick at 0.4–0.63 mm voxels. defective None: no bone (a free shell).
    """
    if defective is None:
        defective = implant.with_array(np.zeros(implant.shape, np.uint8))
    _same_grid(implant, defective)
    crop = _Crop(implant, defective, np.full(3, 4))
    plate = crop.implant
    outer_mark, inner_mark = _sides(crop, _hull_normals(implant, defective))
    faces = _Faces(crop, plate, outer_mark, inner_mark)
    (outer, _), (inner, _) = faces.outer, faces.inner
    if len(outer) == 0 or len(inner) == 0:
        raise InputError("the plate has no separate outer and inner face: its thickness is not defined")
    index = np.argwhere(plate)
    world = crop.world(index[_distance_at(crop.bone, index, crop.grid.spacing) >= min_rim_distance_mm])
    if len(world) == 0:
        raise InputError(f"no voxel of the plate is {min_rim_distance_mm:g} mm or more from the bone")
    world = world[:: int(np.ceil(len(world) / max_points))]
    a = cKDTree(outer).query(world)[0]
    b = cKDTree(inner).query(world)[0]
    return a + b


def plan_holes(implant: Volume, defective: Volume, diameter_mm: float, spacing_mm: float,
               margin_mm: float = 5.0) -> HolePlan:
    """Hole centres on the implant's outer surface, on an even square grid of spacing_mm, none nearer than
    margin_mm to the bone.

    The grid lies in the plane that best fits the outer surface's eligible points (principal axes), and
    each grid node takes the surface point that projects onto it; so neighbouring centres are spacing_mm
    apart in that plane and at least that far apart on the (curved) surface. Each centre's normal is the
    mean outer-surface normal within max(diameter, 2 voxels) of it. InputError when the diameter is below
    HOLE_MIN_VOXELS voxels of the grid or the margin leaves no room for a hole.
    """
    check_plate_options(None, (diameter_mm, spacing_mm), margin_mm)
    _same_grid(implant, defective)
    voxel = float(implant.spacing.max())
    if diameter_mm < HOLE_MIN_VOXELS * voxel:
        raise InputError(f"holes of {diameter_mm:g} mm are under {HOLE_MIN_VOXELS:g} voxels of this {voxel:.2g} mm grid "
                         f"and would not make clean tunnels: use --holes {math.ceil(HOLE_MIN_VOXELS * voxel * 10) / 10:.1f}:S or larger")
    pad = np.ceil((margin_mm + 3.0) / implant.spacing).astype(int) + 2
    crop = _Crop(implant, defective, pad)
    outer_mark, inner_mark = _sides(crop, _hull_normals(implant, defective))
    faces = _Faces(crop, crop.implant | crop.bone, outer_mark, inner_mark)
    (points, normals), index = faces.outer, faces.index[0]
    # the implant's own outer face (not the bone's beside it), its points margin_mm or more from the bone
    # (the bone's surface lies half a voxel beyond its voxel centres)
    on_plate = _distance_at(crop.implant, index, crop.grid.spacing) <= voxel
    clear = _distance_at(crop.bone, index, crop.grid.spacing) - 0.5 * voxel >= margin_mm
    points, normals, eligible = points[on_plate], normals[on_plate], clear[on_plate]
    no_room = f"a --hole-margin of {margin_mm:g} mm leaves no room for a hole on this implant: use a smaller margin"
    if not eligible.any():
        raise InputError(no_room)
    candidates = points[eligible]
    centre = candidates.mean(axis=0)
    axes = np.linalg.svd(candidates - centre, full_matrices=False)[2][:2]
    flat = (candidates - centre) @ axes.T
    low, high = flat.min(axis=0), flat.max(axis=0)
    middle = (low + high) / 2
    reach = np.ceil((high - low) / 2 / spacing_mm).astype(int)
    nodes = np.stack(np.meshgrid(*(np.arange(-k, k + 1) for k in reach), indexing="ij"), axis=-1).reshape(-1, 2)
    nodes = middle + nodes * spacing_mm
    gap, which = cKDTree(flat).query(nodes)
    which = which[gap <= voxel]
    if len(which) == 0:
        raise InputError(no_room)
    centres = candidates[which]
    tree = cKDTree(points)
    radius = max(diameter_mm, 2 * voxel)
    axis = np.array([normals[i].mean(axis=0) for i in tree.query_ball_point(centres, radius)])
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    order = np.lexsort(centres.T[::-1])
    return HolePlan(centres[order], axis[order], float(diameter_mm), float(spacing_mm), float(margin_mm))


def cut_holes(implant: Volume, plan: HolePlan) -> Volume:
    """The implant (uint8) without the voxels whose centre lies within diameter/2 of a hole's axis (the line
    through its centre along its normal), from 2 mm above the centre to HOLE_DEPTH_MM below it: a round
    tunnel through the whole plate."""
    out = implant.mask().copy()
    radius = plan.diameter_mm / 2
    for centre, normal in zip(plan.centres_mm, plan.normals):
        ends = np.array([centre + 2.0 * normal, centre - HOLE_DEPTH_MM * normal])
        lower, upper = implant.index_box(ends.min(axis=0) - radius, ends.max(axis=0) + radius)
        if np.any(upper <= lower):
            continue
        box = box_slices(lower, upper)
        index = np.indices(upper - lower).reshape(3, -1).T + lower
        offset = implant.index_to_world(index) - centre
        along = offset @ normal
        across = np.linalg.norm(offset - along[:, None] * normal, axis=1)
        drill = (across < radius) & (along <= 2.0) & (along >= -HOLE_DEPTH_MM)
        out[box] &= ~drill.reshape(upper - lower)
    return implant.with_array(out.astype(np.uint8))


def _same_grid(implant: Volume, defective: Volume) -> None:
    if not defective.same_grid(implant):
        raise InputError("the defective skull and the implant are on different grids: give volumes on one grid")
    if not np.asarray(implant.array).any():
        raise InputError("the implant is empty (no voxel is 1): there is no plate to make")


class _Crop:
    """The implant's bounding box grown by pad voxels (per axis), with its implant and bone masks."""

    def __init__(self, implant: Volume, defective: Volume, pad) -> None:
        lower, upper = bounding_box(implant.array)
        self.lower = np.maximum(lower - pad, 0)
        self.upper = np.minimum(upper + pad, implant.shape)
        self.box = box_slices(self.lower, self.upper)
        self.grid = implant
        self.implant = implant.mask(self.box)
        self.bone = defective.mask(self.box) & ~self.implant

    def world(self, index: np.ndarray) -> np.ndarray:
        """(N, 3) crop indices (may be fractional) → world mm."""
        return self.grid.index_to_world(np.asarray(index, np.float64) + self.lower)

    def paste(self, mask: np.ndarray) -> Volume:
        out = np.zeros(self.grid.shape, np.uint8)
        out[self.box] = mask
        return self.grid.with_array(out)


def _hull_normals(implant: Volume, defective: Volume) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) world mm, unit outward normals (V, 3)) of the convex hull of the complete skull (the
    mean normal of each vertex's facets), on every other voxel of a grid of over 2 million. Only the first
    and last voxel of every grid line can be a hull vertex, so only those are handed to qhull."""
    stride = 2 if np.prod(implant.shape) > 2_000_000 else 1
    mask = (implant.array[::stride, ::stride, ::stride] != 0) | (defective.array[::stride, ::stride, ::stride] != 0)
    lower, upper = bounding_box(mask)
    mask = mask[box_slices(lower, upper)]
    points = []
    for axis in range(3):
        present = mask.any(axis=axis)
        rest = np.nonzero(present)
        others = [a for a in range(3) if a != axis]
        for end in (mask.argmax(axis=axis), mask.shape[axis] - 1 - np.flip(mask, axis=axis).argmax(axis=axis)):
            index = np.empty((len(rest[0]), 3), np.int64)
            index[:, others[0]], index[:, others[1]], index[:, axis] = rest[0], rest[1], end[rest]
            points.append(index)
    points = np.concatenate(points)
    points = np.stack(np.unravel_index(np.unique(np.ravel_multi_index(points.T, mask.shape)), mask.shape), axis=1)
    world = implant.index_to_world((points + lower) * stride)
    try:
        hull = ConvexHull(world)
    except Exception:  # a flat skull (one slice): its centre stands in
        centre = world.mean(axis=0)
        return centre[None], np.zeros((1, 3))
    normals = np.zeros_like(world)
    for corner in range(3):
        np.add.at(normals, hull.simplices[:, corner], hull.equations[:, :3])
    used = hull.vertices
    normals = normals[used] / np.maximum(np.linalg.norm(normals[used], axis=1, keepdims=True), 1e-12)
    return world[used], normals


def _sides(crop: _Crop, hull: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(outer, inner) bool masks of the crop's background voxels face-touching the implant."""
    plate = crop.implant
    background = ~plate & ~crop.bone
    touching = background & ndimage.binary_dilation(plate, structure=_SIX)
    index = np.argwhere(touching)
    # the implant voxel each touching voxel is nearest (a face neighbour); the step from it is outward when
    # it goes along the outward normal of the hull vertex nearest to it
    _, nearest = ndimage.distance_transform_edt(~plate, sampling=crop.grid.spacing, return_indices=True)
    partner = crop.world(nearest[:, index[:, 0], index[:, 1], index[:, 2]].T)
    hull_points, hull_normals = hull
    if not hull_normals.any():  # no hull: away from the centre is outward
        direction = partner - hull_points[0]
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
    else:
        direction = hull_normals[cKDTree(hull_points).query(partner)[1]]
    step = crop.world(index) - partner
    along = np.einsum("ij,ij->i", step, direction) / np.maximum(np.linalg.norm(step, axis=1), 1e-12)
    # a step across the hull's normal (a riser of the voxel staircase, the implant's side at the rim) says
    # little: such voxels are on neither side (a face's points lie within a voxel or so of its sure ones)
    sure = np.abs(along) >= 0.5
    index, along = index[sure], along[sure]
    outward = along > 0
    labels, _ = ndimage.label(background, structure=_SIX)
    label = labels[tuple(index.T)]
    votes = np.bincount(label, weights=outward, minlength=labels.max() + 1)
    counts = np.bincount(label, minlength=labels.max() + 1)
    share = votes / np.maximum(counts, 1)
    decided = (share >= 0.8) | (share <= 0.2)  # a component that is one side (not leaking round the rim)
    outward = np.where(decided[label], share[label] >= 0.5, outward)
    outer = np.zeros_like(plate)
    inner = np.zeros_like(plate)
    outer[tuple(index[outward].T)] = True
    inner[tuple(index[~outward].T)] = True
    return outer, inner


class _Faces:
    """The outer and inner faces of `solid` smoothed by one voxel (marching-cubes vertices and face
    centres): .outer and .inner are (points (M, 3) world mm, unit outward normals (M, 3)), each face being
    the points within a voxel of the background voxels of its side and nearer them than the other side's."""

    def __init__(self, crop: _Crop, solid: np.ndarray, outer: np.ndarray, inner: np.ndarray) -> None:
        from skimage.measure import marching_cubes

        self.crop = crop
        field = ndimage.gaussian_filter(np.pad(solid, 2).astype(np.float32), sigma=1.0)
        self.gradient = np.gradient(field)
        vertices, faces, _, _ = marching_cubes(field, level=0.5, allow_degenerate=False)
        index = np.concatenate([vertices, vertices[faces].mean(axis=1)]) - 2  # crop indices
        normals = self.normals_at(index)
        spacing = crop.grid.spacing
        near = []
        for side in (outer, inner):
            if side.any():
                distance = ndimage.distance_transform_edt(~np.pad(side, 2), sampling=spacing)
                near.append(ndimage.map_coordinates(distance, (index + 2).T, order=1))
            else:
                near.append(np.full(len(index), np.inf))
        world = crop.world(index)
        step = float(spacing.max())
        self.index: list[np.ndarray] = []
        sides = []
        for mine, theirs in ((near[0], near[1]), (near[1], near[0])):
            keep = (mine <= 1.5 * step) & (mine < theirs)
            sides.append((world[keep], normals[keep]))
            self.index.append(index[keep])
        self.outer, self.inner = sides

    def normals_at(self, index: np.ndarray) -> np.ndarray:
        """(N, 3) unit outward world normals of the smoothed solid at (N, 3) crop indices."""
        index = np.asarray(index, np.float64) + 2
        gradient = np.stack([ndimage.map_coordinates(g, index.T, order=1) for g in self.gradient], axis=1)
        normals = -gradient @ np.linalg.inv(self.crop.grid.directions).T  # world gradient = D⁻¹ · index gradient
        return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _distance_at(mask: np.ndarray, index: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """(N,) distance (mm) from (N, 3) crop indices (fractional: interpolated) to the nearest voxel centre of
    a bool mask (inf without one)."""
    if not mask.any():
        return np.full(len(index), np.inf)
    distance = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return ndimage.map_coordinates(distance, np.asarray(index, np.float64).T, order=1, mode="nearest")


