"""Pictures of the plate options of `pcc implant` (issue 32) on the bundled example case, for docs/toolkit.md.

    python -m tools.analysis.plate_pictures [--out docs/images] [--device auto]

Writes, from the implant the shipped model designs for pcc.examples.EXAMPLE_DEFECTIVE:
  OUT/plate_thickness.png      the preview `pcc implant --thickness 5 --preview` writes (run_jobs)
  OUT/plate_holes.png          the STL of `--thickness 5 --holes 2:10` in the skull around it, outside and inside
  OUT/plate_smooth_vs_raw.png  a close-up of the default STL beside the raw surface (`--no-smooth`), same view
The example is SkullFix case 005 (CC BY-NC-SA 4.0, see ATTRIBUTION.md): the pictures carry that licence.
Each picture is saved with a 256-colour palette to keep it small.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from pcc.examples import EXAMPLE_DEFECTIVE
from pcc.outputs.preview import BONE, IMPLANT
from pcc.outputs.rendering import BACKGROUND, ShadedMesh, render, shaded
from tools import REPO

THICKNESS_MM = 5.0
HOLES = (2.0, 10.0)
_UP_Z = np.array([0.0, 0.0, 1.0])
_ANTERIOR = np.array([0.0, -1.0, 0.0])


def crop_mesh(mesh: ShadedMesh, keep: np.ndarray) -> ShadedMesh:
    """The faces `keep` (bool (F,)) of a shaded mesh, with only the vertices they use (render fits its view
    to every vertex it is given). Shade the whole closed mesh first: its normals then point outward."""
    faces = mesh.faces[keep]
    used, inverse = np.unique(faces, return_inverse=True)
    colour = mesh.colour if mesh.colour.ndim == 1 else mesh.colour[used]
    return ShadedMesh(mesh.vertices[used], inverse.reshape(-1, 3), mesh.normals[used], colour)


def skull_around(defective, implant, pad_mm: float = 18.0) -> ShadedMesh:
    """The defective skull's surface in the implant's box grown by pad_mm (marching cubes of the mask smoothed
    by 0.8 voxel, closed at the box's faces)."""
    from scipy import ndimage
    from skimage.measure import marching_cubes

    from pcc.geometry.masks import bounding_box, box_slices

    lower, upper = bounding_box(implant.array)
    pad = np.ceil(pad_mm / defective.spacing).astype(int)
    lower, upper = np.maximum(lower - pad, 0), np.minimum(upper + pad, defective.shape)
    field = ndimage.gaussian_filter(np.pad(defective.mask(box_slices(lower, upper)).astype(np.float32), 2), 0.8)
    vertices, faces, _, _ = marching_cubes(field, level=0.5, allow_degenerate=False)
    return shaded(defective.index_to_world(vertices - 2 + lower), faces, BONE)


def facing_view(defective, implant_mesh: ShadedMesh) -> tuple[np.ndarray, np.ndarray]:
    """(forward, up) looking at the implant from outside the head, as the preview's 'facing the defect' view."""
    from pcc.geometry.masks import bounding_box

    lower, upper = bounding_box(defective.array)
    centre = defective.index_to_world(((lower + upper - 1) / 2)[None])[0]
    outward = implant_mesh.vertices.mean(axis=0) - centre
    forward = -outward / np.linalg.norm(outward)
    return forward, (_UP_Z if abs(forward[2]) < 0.9 else _ANTERIOR)


def tilted(forward: np.ndarray, up: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The view turned by `degrees` about its horizontal axis (a grazing look shows a surface's terraces)."""
    up = up - forward * (up @ forward)
    up /= np.linalg.norm(up)
    angle = np.radians(degrees)
    return np.cos(angle) * forward + np.sin(angle) * up, -np.sin(angle) * forward + np.cos(angle) * up


def save_figure(figure, path: Path) -> None:
    """Save a matplotlib figure as a palette PNG (256 colours)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor=figure.get_facecolor())
    save_palette(Image.open(buffer), path)


def save_palette(image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").quantize(colors=256, dither=0).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)")


def panels(rows: list[list[tuple[np.ndarray, str]]], title: str, path: Path, *, width: float = 6.2) -> None:
    """Rows of images side by side (each `width` inches wide at 100 dpi), each with its caption, under a title of
    one or more lines (the preview's colours)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    lines = title.count("\n") + 1
    height = (width + 0.1) * len(rows) + 0.35 * lines
    figure, axes = plt.subplots(len(rows), len(rows[0]), figsize=(width * len(rows[0]), height), dpi=100,
                                facecolor=BACKGROUND[0], squeeze=False)
    figure.subplots_adjust(left=0.01, right=0.99, top=1 - (0.35 * lines + 0.3) / height, bottom=0.01, wspace=0.03,
                           hspace=0.08)
    for row, images in zip(axes, rows):
        for axis, (image, caption) in zip(row, images):
            axis.imshow(image, interpolation="lanczos")
            axis.set_axis_off()
            axis.set_title(caption, color="#e6edf3", fontsize=12 * min(1.0, width / 6.2), loc="left")
    figure.text(0.01, 1 - 0.1 / height, title, color="white", fontsize=13, fontweight="bold", va="top", linespacing=1.4)
    save_figure(figure, path)
    plt.close(figure)


def run_case(folder: Path, name: str, finish, device: str) -> tuple[dict, Path, Path]:
    """`pcc implant EXAMPLE -o NAME.nrrd --stl NAME.stl --preview NAME.png --report NAME.json` with `finish`:
    (its report record, the STL, the preview)."""
    from pcc.pipeline import Job, run_jobs

    job = Job(EXAMPLE_DEFECTIVE, folder / f"{name}.nrrd", folder / f"{name}.stl", folder / f"{name}.png")
    run_jobs([job], device=device, finish=finish, resume=False, report_path=folder / f"{name}.json")
    record = json.loads((folder / f"{name}.json").read_text())["cases"][0]
    return record, job.stl, job.preview


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import trimesh
    from PIL import Image

    from pcc.design import design_implant, load_model
    from pcc.io import read_volume
    from pcc.outputs.printing import mesh_smoothness, printable_mesh
    from pcc.pipeline import FinishOptions

    defective = read_volume(EXAMPLE_DEFECTIVE)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        # (i) --thickness 5: the preview as the pipeline writes it
        record, _, preview = run_case(folder, "plate", FinishOptions(thickness_mm=THICKNESS_MM), args.device)
        print(f"--thickness {THICKNESS_MM:g}: plate {record['plate']}, mesh ok {record['mesh']['ok']}")
        save_palette(Image.open(preview), args.out / "plate_thickness.png")
        # (ii) --thickness 5 --holes 2:10: the STL sent to the printer, in the skull around it
        record, stl, _ = run_case(folder, "holes", FinishOptions(thickness_mm=THICKNESS_MM, holes=HOLES), args.device)
        holes, plate = record["holes"], record["plate"]
        print(f"--holes {HOLES[0]:g}:{HOLES[1]:g}: {holes['count']} holes, plate {plate}, mesh ok {record['mesh']['ok']}")
        mesh = trimesh.load(stl)
        part = shaded(np.asarray(mesh.vertices), np.asarray(mesh.faces), IMPLANT)
        holed = read_volume(folder / "holes.nrrd")
        skull = skull_around(defective, holed)
        forward, up = facing_view(defective, part)
        outside = render([skull, part], forward, up, pixels=600)
        inside = render([part], -forward, up, pixels=600)
        genus = (2 - int(mesh.euler_number)) // 2
        panels([[(outside, "outer face, in the skull around it (facing the defect)"),
                 (inside, "inner face (from inside the head), the implant alone")]],
               f"--thickness {THICKNESS_MM:g} --holes {HOLES[0]:g}:{HOLES[1]:g}: {holes['count']} holes of "
               f"{holes['diameter_mm']:g} mm, {holes['spacing_mm']:g} mm apart, centres at least {holes['margin_mm']:g} mm "
               f"from bone\nSTL: genus {genus}, checks {'passed' if record['mesh']['ok'] else 'FAILED'}; plate thickness "
               f"median {plate['measured_mm']['median']:.2f} mm away from the rim",
               args.out / "plate_holes.png")
    # (iii) the default STL beside the raw surface (--no-smooth) of the same designed implant
    implant = design_implant(defective, load_model(device=args.device))
    smooth, raw = printable_mesh(implant), printable_mesh(implant, smoothing_iterations=0)
    angles = [mesh_smoothness(m)["mean_dihedral_deg"] for m in (smooth, raw)]
    parts = [shaded(np.asarray(m.vertices), np.asarray(m.faces), IMPLANT) for m in (smooth, raw)]
    forward, up = facing_view(defective, parts[0])
    whole = [render([p], forward, up, pixels=520) for p in parts]
    # the close-up: the faces within 20 mm of the implant's outermost point on the facing view's axis, seen at
    # a grazing angle
    vertices = parts[0].vertices
    offset = vertices - vertices.mean(axis=0)
    across = np.linalg.norm(offset - np.outer(offset @ forward, forward), axis=1)
    near_axis = np.flatnonzero(across <= np.percentile(across, 2))
    focus = vertices[near_axis[np.argmin(vertices[near_axis] @ forward)]]
    crops = [crop_mesh(p, np.linalg.norm(p.vertices[p.faces].mean(axis=1) - focus, axis=1) <= 20.0) for p in parts]
    grazing = tilted(forward, up, -55.0)  # the camera 55° above the facing view
    close = [render([c], *grazing, pixels=520) for c in crops]
    panels([[(whole[0], f"default STL (Taubin): mean dihedral angle {angles[0]:.1f}°"),
             (whole[1], f"--no-smooth (raw marching cubes): {angles[1]:.1f}°")],
            [(close[0], "close-up: faces within 20 mm, seen 55° from above"),
             (close[1], "the same faces of the raw surface")]],
           f"the designed implant's STL, facing the defect (the same view for both)\n"
           f"mean dihedral angle, default / raw: {angles[0] / angles[1]:.2f}",
           args.out / "plate_smooth_vs_raw.png", width=5.0)


if __name__ == "__main__":
    main()
