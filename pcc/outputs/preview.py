"""Preview pictures: the defective skull with its implant, shaded in 3-D from the surgeon's views,
and slices through the defect with the implant overlaid.

    from pcc.outputs.preview import render_preview
    render_preview(defective, implant, "case_000.png", title="000")

The 3-D views are rendered by pcc.outputs.rendering (a z-buffer rasterizer, numpy only):
marching-cubes meshes in world mm (the skull from a 2×-pooled mask, the implant at full
resolution and Taubin-smoothed, as printed), smooth-shaded with Blinn-Phong lighting and depth
cueing, 2× supersampled. A 512×512×300 case renders in a few seconds on one CPU core.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

from pcc.outputs.rendering import BACKGROUND, VIEW_PIXELS, ShadedMesh, render, shaded
from pcc.volume import Volume

BONE = np.array([0.93, 0.89, 0.80])
IMPLANT = np.array([0.10, 0.62, 0.95])

# LPS world axes: x → patient's left, y → posterior, z → superior.
_UP_Z = np.array([0.0, 0.0, 1.0])
_ANTERIOR = np.array([0.0, -1.0, 0.0])


def render_preview(
    defective: Volume,
    implant: Volume,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    implant_mesh=None,
    lines: list[str] | None = None,
    notes: list[str] | None = None,
    confidence: Volume | None = None,
) -> None:
    """Write a PNG (atomically): top, side (the defect's side), front and defect-facing 3-D views of
    the skull with the implant in blue, and axial, coronal and sagittal slices through the defect.

    Args:
        defective: the defective skull (binary volume).
        implant: the implant on the same grid (may be empty: the skull is then shown alone).
        path: output .png.
        title: heading (e.g. the case name).
        implant_mesh: the printable trimesh of the implant when already made (saves its time).
        lines: extra text lines under the title (e.g. volume and thickness).
        notes: lines in orange under those (e.g. the reasons to review the design).
        confidence: the implant's confidence map (uint8 percent, same grid): the implant is then coloured by it
            (blue where sure, through yellow, to red where unsure), with a legend; its 3-D surface takes
            the confidence 1 mm inside it (on the surface itself every design's edge blurs it to about 50 %).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from pcc.errors import InputError
    from pcc.io import atomic_path

    if not str(path).lower().endswith(".png"):
        raise InputError(f"{path}: the preview must be a .png file")
    if not defective.same_grid(implant):
        raise InputError("the defective skull and the implant are on different grids")
    skull_mesh = _skull_mesh(defective)
    meshes = [skull_mesh]
    has_implant = bool(implant.mask().any())
    if has_implant:
        if implant_mesh is None:
            from pcc.outputs.printing import printable_mesh

            implant_mesh = printable_mesh(implant)
        vertices, faces = np.asarray(implant_mesh.vertices), np.asarray(implant_mesh.faces)
        part = shaded(vertices, faces, IMPLANT)
        if confidence is not None:
            inside = _sample(confidence, vertices - part.normals * 1.0)
            part = ShadedMesh(part.vertices, part.faces, part.normals, confidence_colours(inside / 100.0))
        meshes.append(part)
    views = _views(skull_mesh, meshes[1] if has_implant else None)

    figure = plt.figure(figsize=(16, 9.4), dpi=100, facecolor=BACKGROUND[0])
    grid = figure.add_gridspec(2, 4, height_ratios=[1.0, 0.82], left=0.01, right=0.99, top=0.90, bottom=0.02,
                               wspace=0.03, hspace=0.10)
    for column, (name, forward, up) in enumerate(views):
        axis = figure.add_subplot(grid[0, column])
        axis.imshow(render(meshes, forward, up, pixels=VIEW_PIXELS), interpolation="lanczos")
        _label(axis, name)
    slice_grid = grid[1, :].subgridspec(1, 3, wspace=0.04)
    for column, (name, image, extent) in enumerate(_slices(defective, implant, confidence)):
        axis = figure.add_subplot(slice_grid[0, column])
        axis.imshow(image, extent=extent, interpolation="nearest")
        _label(axis, name)
    heading = title or "implant preview"
    figure.text(0.012, 0.965, heading, color="white", fontsize=17, fontweight="bold", va="center")
    info = lines if lines is not None else _default_lines(implant)
    for row, (texts, colour) in enumerate(((info, "#c9d1d9"), (notes or [], "#ffa657"))):
        text = "    ".join(texts)  # one row each, its font smaller when it is long (a plate's and holes' figures)
        figure.text(0.012, 0.928 - 0.03 * row, text, color=colour, fontsize=11.5 * min(1.0, 190 / max(len(text), 1)), va="center")
    figure.text(0.988, 0.965, "bone", color=BONE, fontsize=12, ha="right", va="center", fontweight="bold")
    if confidence is None:
        figure.text(0.945, 0.965, "implant", color=IMPLANT, fontsize=12, ha="right", va="center", fontweight="bold")
    else:
        for offset, percent in enumerate((90, 70, 50)):
            figure.text(0.945 - 0.035 * offset, 0.965, f"{percent}%", color=confidence_colours(np.array([percent / 100]))[0],
                        fontsize=12, ha="right", va="center", fontweight="bold")
        figure.text(0.840, 0.965, "implant confidence", color="#c9d1d9", fontsize=12, ha="right", va="center")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", facecolor=figure.get_facecolor())
    plt.close(figure)


def confidence_colours(probability: np.ndarray) -> np.ndarray:
    """(N, 3) RGB of probabilities (N,) 0..1: red at 0.5 and below, yellow at 0.7, the implant's blue from 0.9."""
    stops = np.array([0.5, 0.7, 0.9])
    colours = np.array([[0.92, 0.26, 0.20], [0.98, 0.82, 0.25], IMPLANT])
    p = np.clip(np.asarray(probability, dtype=np.float64), stops[0], stops[-1])
    return np.column_stack([np.interp(p, stops, colours[:, c]) for c in range(3)])


def _sample(volume: Volume, points: np.ndarray) -> np.ndarray:
    """Values (float) of the volume's voxels nearest to world-mm points (N, 3); 0 off the grid."""
    index = np.rint(volume.world_to_index(points)).astype(int)
    inside = np.all((index >= 0) & (index < volume.shape), axis=1)
    values = np.zeros(len(points))
    values[inside] = volume.array[tuple(index[inside].T)]
    return values


def _default_lines(implant: Volume) -> list[str]:
    voxels = int(implant.mask().sum())
    if voxels == 0:
        return ["the implant is empty"]
    return [f"implant {voxels * implant.voxel_volume / 1000:.1f} cm³ ({voxels} voxels)"]


def _label(axis, text: str) -> None:
    axis.set_axis_off()
    axis.text(0.02, 0.97, text, transform=axis.transAxes, color="#e6edf3", fontsize=11.5, va="top",
              bbox=dict(facecolor="#000000", alpha=0.35, edgecolor="none", pad=2.5))


# ----------------------------------------------------------------------------------- meshes


def _skull_mesh(defective: Volume, *, pool: int = 2) -> ShadedMesh:
    """The skull's surface from a pool×-averaged mask (≈1 mm triangles), lightly smoothed."""
    from skimage.measure import marching_cubes

    from pcc.geometry.masks import bounding_box

    mask = defective.mask()
    lower, upper = bounding_box(mask)
    lower = [lo - lo % pool for lo in lower]
    crop = mask[tuple(slice(lo, hi) for lo, hi in zip(lower, upper))]
    crop = np.pad(crop, [(0, (-s) % pool) for s in crop.shape])
    counts = crop.view(np.uint8)
    for axis in range(3):  # sum pool×pool×pool blocks one axis at a time (uint8: at most pool³)
        shape = counts.shape[:axis] + (counts.shape[axis] // pool, pool) + counts.shape[axis + 1:]
        counts = counts.reshape(shape).sum(axis=axis + 1, dtype=np.uint8)
    field = counts.astype(np.float32) / pool**3
    field = ndimage.gaussian_filter(np.pad(field, 2), 0.9)
    vertices, faces, _, _ = marching_cubes(field, level=0.5, allow_degenerate=False)
    index = (vertices - 2) * pool + (pool - 1) / 2.0 + np.asarray(lower)
    world = defective.index_to_world(index)
    if np.linalg.det(defective.directions) < 0:
        faces = faces[:, ::-1]
    return shaded(world, faces, BONE)


def _views(skull: ShadedMesh, implant: ShadedMesh | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, forward, up) of the top, side, front and defect-facing views (LPS world)."""
    centre = 0.5 * (skull.vertices.min(axis=0) + skull.vertices.max(axis=0))
    left = implant is None or implant.vertices[:, 0].mean() >= centre[0]
    side = ("left", np.array([-1.0, 0.0, 0.0])) if left else ("right", np.array([1.0, 0.0, 0.0]))
    views = [
        ("top (anterior up)", np.array([0.0, 0.0, -1.0]), _ANTERIOR),
        (f"{side[0]} side", side[1], _UP_Z),
        ("front", np.array([0.0, 1.0, 0.0]), _UP_Z),
    ]
    if implant is not None:
        outward = implant.vertices.mean(axis=0) - centre
        forward = -outward / max(np.linalg.norm(outward), 1e-9)
        up = _UP_Z if abs(forward[2]) < 0.9 else _ANTERIOR
        views.append(("facing the defect", forward, up))
    else:
        views.append(("back", np.array([0.0, -1.0, 0.0]), _UP_Z))
    return views


# ---------------------------------------------------------------------------------- slices


def _canonical(volume: Volume) -> tuple[list[int], list[bool], np.ndarray]:
    """Axis permutation and flips that put the array in (L, P, S)-increasing order, and its spacing."""
    directions = np.asarray(volume.directions)
    order = [int(np.argmax(np.abs(directions[:, world]))) for world in range(3)]
    if sorted(order) != [0, 1, 2]:
        order = [0, 1, 2]
    flips = [bool(directions[order[world], world] < 0) for world in range(3)]
    return order, flips, volume.spacing[order]


def _orient(array: np.ndarray, order: list[int], flips: list[bool]) -> np.ndarray:
    array = np.transpose(array, order)
    return array[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]


def _slices(defective: Volume, implant: Volume, confidence: Volume | None = None):
    """(name, RGB image, extent mm) of axial, coronal and sagittal slices through the defect (the implant
    coloured by confidence when it is given)."""
    order, flips, spacing = _canonical(defective)
    skull = _orient(defective.mask(), order, flips)
    part = _orient(implant.mask(), order, flips)
    sure = _orient(confidence.array, order, flips) if confidence is not None else None
    focus = part if part.any() else skull
    from pcc.geometry.masks import bounding_box

    lower, upper = bounding_box(focus)
    margin = np.ceil(25.0 / spacing).astype(int)
    lo = np.maximum(lower - margin, 0)
    hi = np.minimum(upper + margin, skull.shape)

    def pick(axis: int) -> int:
        # the slice with the most implant among the middle half of its extent
        counts = focus.sum(axis=tuple(a for a in range(3) if a != axis))
        a, b = lower[axis] + (upper[axis] - lower[axis]) // 4, lower[axis] + 3 * (upper[axis] - lower[axis]) // 4 + 1
        return int(a + np.argmax(counts[a:b]))

    def cut(array, index):
        return None if array is None else array[index]

    out = []
    # axial: looking from the feet (radiological): anterior up, patient's left on the image's right
    k = pick(2)
    axial = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), k)
    out.append((f"axial slice {k}", _overlay(skull[axial].T, part[axial].T, _t(cut(sure, axial))),
                (0, (hi[0] - lo[0]) * spacing[0], (hi[1] - lo[1]) * spacing[1], 0)))
    # coronal: superior up, patient's left on the right
    j = pick(1)
    coronal = (slice(lo[0], hi[0]), j, slice(lo[2], hi[2]))
    out.append((f"coronal slice {j}", _overlay(skull[coronal].T[::-1], part[coronal].T[::-1], _t(cut(sure, coronal), True)),
                (0, (hi[0] - lo[0]) * spacing[0], 0, (hi[2] - lo[2]) * spacing[2])))
    # sagittal: superior up, anterior on the left
    i = pick(0)
    sagittal = (i, slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    out.append((f"sagittal slice {i}", _overlay(skull[sagittal].T[::-1], part[sagittal].T[::-1], _t(cut(sure, sagittal), True)),
                (0, (hi[1] - lo[1]) * spacing[1], 0, (hi[2] - lo[2]) * spacing[2])))
    return out


def _t(array: np.ndarray | None, flip: bool = False) -> np.ndarray | None:
    """A slice transposed (and flipped upside down) like the masks it is drawn with; None stays None."""
    if array is None:
        return None
    return array.T[::-1] if flip else array.T


def _overlay(skull: np.ndarray, implant: np.ndarray, confidence: np.ndarray | None = None) -> np.ndarray:
    """RGB slice: bone, the implant (coloured by confidence, percent, when given) and its outline."""
    image = np.zeros(skull.shape + (3,))
    image[:] = np.array([0.05, 0.06, 0.07])
    image[skull] = BONE * 0.92
    if confidence is None:
        image[implant] = IMPLANT
    else:
        # the implant by its confidence; outside it, voxels the designs gave 30 % or more, dimmed
        shown = implant | (confidence >= 30) & ~skull
        colours = confidence_colours(confidence[shown] / 100.0)
        image[shown] = np.where(implant[shown][:, None], colours, 0.55 * colours)
    edge = implant & ~ndimage.binary_erosion(implant)
    image[edge] = np.clip(IMPLANT * 1.3, 0, 1) if confidence is None else np.array([0.85, 0.92, 1.0])
    return image
