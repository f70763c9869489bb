"""Review pages: one self-contained HTML file per case, to inspect a design in any browser, offline.

    from pcc.outputs.review import write_review_page, write_review_index
    write_review_page("000.html", case_name="000", defective=skull, implant=implant, confidence=conf,
                      mesh=printable, report=record, version=pcc.__version__)
    write_review_index("review/", rows)   # rows: the cases' report records, each with "page"

The page inlines the viewer (NiiVue, pcc/outputs/viewer/niivue.js, rebuilt by
tools/release/build_viewer.py) and the case's data, and loads nothing over the network: a 3-D view
of the skull (volume-rendered from its mask) with the implant's mesh, three slices through the
implant (the CT's when given, else the skull's) with the implant overlaid, coloured by confidence
(else by local thickness) with a legend, toggles, and the report's figures and warnings.

Sizes: the background (skull, CT) is cropped to the head's box plus a margin and max- (skull) or
mean- (CT) pooled by the smallest integer factor that brings it under BACKGROUND_VOXELS; the
implant overlay keeps full resolution on its own cropped grid; the mesh is embedded as it is.
Volumes go in as gzipped NIfTI (RAS, as NiiVue reads them), base64-encoded.
"""

from __future__ import annotations

import base64
import gzip
import html
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from pcc.volume import Volume

VIEWER = Path(__file__).with_name("viewer")
BACKGROUND_VOXELS = 12_000_000  # most voxels of each background volume (skull, CT) on the page
MARGIN_MM = 6.0  # around the head's box (background) and the implant's box (overlay)
BONE = (0.93, 0.89, 0.80)
PLAIN = (0.10, 0.62, 0.95)  # the implant without a colour scale (preview.py's blue)
# Confidence (preview.py's scale): red at 50 % and below, yellow at 70 %, blue from 90 %.
CONFIDENCE_STOPS = [(0.0, (0.92, 0.26, 0.20)), (0.5, (0.92, 0.26, 0.20)), (0.7, (0.98, 0.82, 0.25)), (0.9, PLAIN), (1.0, PLAIN)]
THICKNESS_MAX_MM = 8.0  # the thickness scale runs 0..8 mm: red ≤ 1 mm, yellow 2.5 mm, blue ≥ 4 mm
THICKNESS_STOPS = [(0.0, (0.92, 0.26, 0.20)), (1 / 8, (0.92, 0.26, 0.20)), (2.5 / 8, (0.98, 0.82, 0.25)), (4 / 8, PLAIN), (1.0, PLAIN)]
CT_WINDOW_HU = (-1000.0, 2000.0)  # stored as uint8 over this range
CT_DISPLAY_HU = (250.0, 1800.0)  # shown: a bone window (the 3-D view renders what lies above its low end)
# LPS-like space names → the sign of each world axis in RAS (NiiVue's and NIfTI's world).
_RAS_SIGNS = {"left-posterior-superior": (-1, -1, 1), "right-anterior-superior": (1, 1, 1), "left-anterior-superior": (-1, 1, 1)}


def write_review_page(
    path: str | os.PathLike,
    *,
    case_name: str,
    defective: Volume,
    implant: Volume,
    confidence: Volume | None = None,
    ct: Volume | None = None,
    mesh: Any = None,
    report: dict,
    version: str,
) -> Path:
    """Write one case's review page (atomically) and return its path.

    Args:
        path: the .html file to write.
        case_name: shown in the title and heading.
        defective: the defective skull, a binary (X, Y, Z) volume in world mm.
        implant: the implant, binary, on the defective skull's grid (may be empty).
        confidence: the implant's confidence map, uint8 percent, same grid; colours the implant.
            Without it the implant is coloured by its local thickness (mm).
        ct: the CT the skull was segmented from (HU, any grid in the same world); shown in the slices.
        mesh: the implant's printable mesh (trimesh-like: .vertices (V, 3) world mm, .faces (F, 3));
            None: a marching-cubes surface of the implant is shown.
        report: the case's report record (pcc's run report): its figures, quality and warnings are listed.
        version: pcc's version, shown in the title.
    """
    from pcc.io import atomic_path

    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        from pcc.errors import InputError

        raise InputError(f"{path}: the review page must be an .html file")
    page = render_review_page(case_name=case_name, defective=defective, implant=implant, confidence=confidence,
                              ct=ct, mesh=mesh, report=report, version=version)
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target


def render_review_page(*, case_name: str, defective: Volume, implant: Volume, confidence: Volume | None = None,
                       ct: Volume | None = None, mesh: Any = None, report: dict, version: str) -> str:
    """The review page's HTML (write_review_page's arguments, without the path)."""
    skull = np.asarray(defective.array) != 0
    solid = np.asarray(implant.array) != 0
    boxes = [_box(mask, defective, MARGIN_MM) for mask in (skull, solid) if mask.any()]
    lower = np.min([b[0] for b in boxes], axis=0) if boxes else np.zeros(3, int)
    upper = np.max([b[1] for b in boxes], axis=0) if boxes else np.array(defective.shape)
    data: dict[str, Any] = {"bone": BONE, "plain": PLAIN, "azimuth": 110, "ct": None, "implant": None, "mesh": None,
                            "legend": None, "focus": None}
    # The skull max-pooled (0/1): thin bone stays (mean pooling and a threshold render with moiré in NiiVue).
    data["skull"] = _nifti_entry(_pooled(defective.with_array(skull.view(np.uint8)), lower, upper, "max"), "skull.nii.gz")
    if ct is not None:
        ct_head = np.asarray(ct.array) > -500
        ct_lower, ct_upper = _box(ct_head if ct_head.any() else np.ones(ct.shape, bool), ct, MARGIN_MM)
        low, high = CT_WINDOW_HU
        scaled = np.clip((np.asarray(ct.array, np.float32) - low) * (255.0 / (high - low)), 0, 255)
        data["ct"] = {**_nifti_entry(_pooled(ct.with_array(scaled), ct_lower, ct_upper, "mean"), "ct.nii.gz"),
                      "cal": [(v - low) * 255.0 / (high - low) for v in CT_DISPLAY_HU]}
    if solid.any():
        i_lower, i_upper = _box(solid, implant, MARGIN_MM)
        box = tuple(slice(a, b) for a, b in zip(i_lower, i_upper))
        crop = solid[box]
        if confidence is not None:
            t = np.clip(np.asarray(confidence.array[box], np.float32) / 100.0, 0.0, 1.0)
            data["legend"] = {"what": "confidence", "title": "implant confidence", "stops": CONFIDENCE_STOPS,
                              "ticks": [(0.5, "≤50 %"), (0.7, "70 %"), (0.9, "≥90 %")]}
        else:
            from pcc.outputs.thickness import local_thickness

            t = np.clip(local_thickness(crop, implant.spacing) / THICKNESS_MAX_MM, 0.0, 1.0)
            data["legend"] = {"what": "thickness", "title": "implant local thickness (mm)", "stops": THICKNESS_STOPS,
                              "ticks": [(0.0, "0"), (1 / 8, "1"), (2.5 / 8, "2.5"), (4 / 8, "4"), (1.0, "≥8 mm")]}
        code = np.where(crop, 2 + np.rint(t * 253), 0).astype(np.uint8)  # 0 outside (transparent), 2..255 inside
        grid = _cropped(implant, i_lower)
        data["implant"] = _nifti_entry(Volume(code, grid.directions, grid.origin, implant.space), "implant.nii.gz")
        focus = implant.index_to_world((np.argwhere(crop) + i_lower).mean(axis=0, keepdims=True))[0]
        data["focus"] = _to_ras(focus, implant.space).tolist()
        data["mesh"] = _mesh_entry(implant, crop, i_lower, code, mesh)
        head_centre = defective.index_to_world(((lower + upper - 1) / 2.0)[None])[0]
        data["azimuth"] = _azimuth(_to_ras(focus - head_centre, implant.space))
    title = f"{case_name} — pcc {version} implant review"
    fields = {"TITLE": html.escape(title), "CASE": html.escape(case_name), "VERSION": html.escape(version),
              "PANEL": _panel(report), "NIIVUE": (VIEWER / "niivue.js").read_text(encoding="utf-8"),
              "DATA": json.dumps(data, separators=(",", ":")).replace("</", "<\\/")}
    template = (VIEWER / "page.html").read_text(encoding="utf-8")
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: fields[m.group(1)], template)  # one pass: inserted text is not rescanned


def write_review_index(folder: str | os.PathLike, rows: list[dict]) -> Path:
    """Write folder/index.html (atomically): one line per case with its link, implant volume, thickness,
    review flag and warnings. rows: the cases' report records (keys case, status, implant, quality,
    warnings, error as pcc's run report has them), each with "page": its page's file name in `folder`
    (default "<case>.html"). Returns the index's path."""
    from pcc.io import atomic_path

    lines = []
    for row in rows:
        case = str(row.get("case", "?"))
        page = row.get("page") or f"{case}.html"
        implant = row.get("implant") or {}
        quality = row.get("quality") or {}
        volume = implant.get("volume_mm3")
        thickness = [implant.get(k) for k in ("thickness_min_mm", "thickness_p05_mm", "thickness_mean_mm")]
        review = quality.get("review")
        status = row.get("status") or "done"
        flag = status if status in ("failed", "skipped") else ("review" if review else ("ok" if review is not None else "–"))
        notes = [str(w) for w in row.get("warnings") or []] + ([str(row["error"])] if row.get("error") else [])
        reasons = [str(r) for r in quality.get("reasons") or []] if review else []
        # a failed case has no page; a page's name is URL-quoted (# ? % in a case name), then escaped
        name = (html.escape(case) if status == "failed" else
                f"<a href=\"{html.escape(quote(str(page)), quote=True)}\">{html.escape(case)}</a>")
        lines.append(
            f"<tr><td>{name}</td>"
            f"<td class=\"n\">{'' if volume is None else f'{volume / 1000:.1f}'}</td>"
            f"<td class=\"n\">{' / '.join('–' if v is None else f'{v:.1f}' for v in thickness) if any(v is not None for v in thickness) else ''}</td>"
            f"<td class=\"{flag}\">{flag}{_list(reasons)}</td>"
            f"<td>{_list(notes)}</td>"
            "</tr>")
    flagged = sum(1 for row in rows if (row.get("quality") or {}).get("review"))
    page = _INDEX.format(count=len(rows), flagged=flagged, rows="\n".join(lines))
    target = Path(folder) / "index.html"
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target


_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>pcc implant review: {count} cases</title>
<style>
 body {{ background: #15191e; color: #e6edf3; font: 14px/1.4 system-ui, sans-serif; margin: 16px; }}
 a {{ color: #58a6ff; }} table {{ border-collapse: collapse; }} th, td {{ padding: 4px 10px; border-bottom: 1px solid #2b323b; vertical-align: top; text-align: left; }}
 td.n {{ text-align: right; font-variant-numeric: tabular-nums; }} td.review, td.failed {{ color: #ffa657; }} td.skipped {{ color: #8b949e; }} td.ok {{ color: #56d364; }}
 ul {{ margin: 0; padding-left: 16px; }} th {{ color: #8b949e; font-weight: 600; }}
</style></head><body>
<h1>pcc implant review</h1>
<p>{count} cases, {flagged} flagged for review.</p>
<table><thead><tr><th>case</th><th>implant (cm³)</th><th>thickness min / p5 / mean (mm)</th><th>review</th><th>warnings</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>" if items else ""


def _panel(report: dict) -> str:
    """The side panel's HTML: review flag and reasons, figures, warnings, the whole record (all escaped)."""
    implant = report.get("implant") or {}
    quality = report.get("quality") or {}
    parts = []
    if report.get("status") not in (None, "done"):
        parts.append(f'<div class="flag review">{html.escape(str(report.get("status")))}: {html.escape(str(report.get("error", "")))}</div>')
    if "review" in quality:
        parts.append(f'<div class="flag {"review" if quality["review"] else "ok"}">'
                     f'{"review this design before use" if quality["review"] else "no review flag"}</div>')
        parts.append(_list([str(r) for r in quality.get("reasons") or []]).replace("<ul>", '<ul class="reasons">'))
    figures = []

    def figure(name: str, value: Any, unit: str, scale: float = 1.0, digits: int = 1) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            figures.append(f"<tr><td>{html.escape(name)}</td><td>{value * scale:.{digits}f} {html.escape(unit)}</td></tr>")

    figure("implant volume", implant.get("volume_mm3"), "cm³", 1e-3)
    figure("thickness min", implant.get("thickness_min_mm"), "mm", digits=2)
    figure("thickness 5th percentile", implant.get("thickness_p05_mm"), "mm", digits=2)
    figure("thickness mean", implant.get("thickness_mean_mm"), "mm", digits=2)
    figure("thickness max", implant.get("thickness_max_mm"), "mm", digits=2)
    figure("surface area", implant.get("area_mm2"), "cm²", 1e-2)
    figure("expected DSC", quality.get("expected_dsc"), "", digits=2)
    if figures:
        parts.append('<h2>Figures</h2><table class="figures">' + "".join(figures) + "</table>")
    warnings = [str(w) for w in report.get("warnings") or []]
    parts.append("<h2>Warnings</h2>" + (_list(warnings).replace("<ul>", '<ul class="warnings">') if warnings else "<div>none</div>"))
    record = html.escape(json.dumps(report, indent=1, default=str, ensure_ascii=False))
    parts.append(f"<h2>Report</h2><details><summary>the case's whole record</summary><pre>{record}</pre></details>")
    return "\n".join(parts)


def _box(mask: np.ndarray, volume: Volume, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Index bounds [lower, upper) of a non-empty (X, Y, Z) mask's voxels, widened by margin_mm, clipped."""
    plane = mask.any(axis=2)
    spans = [np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0)), np.flatnonzero(mask.any(axis=(0, 1)))]
    pad = np.ceil(margin_mm / volume.spacing).astype(int)
    lower = np.array([span[0] for span in spans]) - pad
    upper = np.array([span[-1] + 1 for span in spans]) + pad
    return np.maximum(lower, 0), np.minimum(upper, volume.shape)


def _cropped(volume: Volume, lower: np.ndarray, factor: int = 1) -> Volume:
    """The grid of volume's voxels from `lower` pooled in factor³ blocks (a placeholder array)."""
    origin = volume.origin + (np.asarray(lower) + (factor - 1) / 2.0) @ volume.directions
    return Volume(np.zeros((1, 1, 1), np.uint8), volume.directions * factor, origin, volume.space)


def _pooled(volume: Volume, lower: np.ndarray, upper: np.ndarray, how: str, gain: float = 1.0) -> Volume:
    """The box [lower, upper) of a volume, pooled ("max" or "mean") in factor³ blocks, factor the smallest
    integer that leaves at most BACKGROUND_VOXELS voxels; uint8 of gain × the pooled values (the box shrinks
    to whole blocks)."""
    size = np.asarray(upper) - np.asarray(lower)
    factor = max(1, math.ceil((float(np.prod(size)) / BACKGROUND_VOXELS) ** (1 / 3) - 1e-9))
    blocks = np.maximum(size // factor, 1)
    crop = volume.array[tuple(slice(a, a + n * factor) for a, n in zip(lower, blocks))]
    if factor == 1:
        pooled = np.asarray(crop) * np.float32(gain) if gain != 1 else np.asarray(crop)
    else:  # one strided view per offset in the block: no reshape copies
        views = [crop[i::factor, j::factor, k::factor][: blocks[0], : blocks[1], : blocks[2]]
                 for i in range(factor) for j in range(factor) for k in range(factor)]
        if how == "max":
            pooled = views[0].copy()
            for view in views[1:]:
                np.maximum(pooled, view, out=pooled)
        else:
            pooled = views[0].astype(np.float32)
            for view in views[1:]:
                pooled += view
            pooled *= gain / len(views)
    grid = _cropped(volume, lower, factor)
    array = np.rint(pooled).astype(np.uint8) if pooled.dtype.kind == "f" else pooled.astype(np.uint8)
    return Volume(array, grid.directions, grid.origin, volume.space)


def _ras_signs(space: str) -> np.ndarray:
    return np.array(_RAS_SIGNS.get(space, _RAS_SIGNS["left-posterior-superior"]), dtype=np.float64)


def _to_ras(points: np.ndarray, space: str) -> np.ndarray:
    """World mm in `space` (..., 3) → RAS mm (each axis flips or not)."""
    return np.asarray(points, np.float64) * _ras_signs(space)


def _azimuth(offset_ras: np.ndarray) -> float:
    """NiiVue's render azimuth (degrees) that faces the implant, from its offset (3,) RAS mm from the head's
    centre (NiiVue: 0 looks at the back of the head, 90 at its left side, 180 at the face, 270 at its right)."""
    if abs(offset_ras[0]) < 1e-6 and abs(offset_ras[1]) < 1e-6:
        return 110.0
    return float(np.degrees(np.arctan2(-offset_ras[0], -offset_ras[1]))) % 360.0


def _nifti_bytes(volume: Volume) -> bytes:
    """A gzipped NIfTI-1 of the volume with its RAS sform (shear kept)."""
    import nibabel

    affine = np.diag([*_ras_signs(volume.space), 1.0]) @ volume.affine
    image = nibabel.Nifti1Image(np.asarray(volume.array), affine)
    image.header.set_sform(affine, code=1)
    image.header.set_qform(affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)


def _nifti_entry(volume: Volume, name: str) -> dict[str, str]:
    return {"name": name, "b64": base64.b64encode(_nifti_bytes(volume)).decode("ascii")}


def _packed(array: np.ndarray) -> str:
    """base64 of the gzipped little-endian bytes of an array."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as handle:
        handle.write(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _mesh_entry(implant: Volume, crop: np.ndarray, lower: np.ndarray, code: np.ndarray, mesh: Any) -> dict[str, str] | None:
    """The implant's mesh for the page: RAS points, faces and the colour value (uint8, the overlay's code
    0..255) of the implant voxel nearest each vertex at least one voxel deep (the surface itself blurs)."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    if mesh is None:
        from skimage.measure import marching_cubes

        vertices, faces, _, _ = marching_cubes(np.pad(crop, 1).astype(np.float32), 0.5)
        vertices = implant.index_to_world(vertices - 1 + lower)
    else:
        vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces)
    if len(vertices) == 0 or len(faces) == 0:
        return None
    deep = ndimage.binary_erosion(crop)
    index = np.argwhere(deep if deep.any() else crop)
    tree = cKDTree(implant.index_to_world(index + lower))
    _, nearest = tree.query(vertices)
    values = code[tuple(index[nearest].T)]
    return {"points": _packed(_to_ras(vertices, implant.space).astype(np.float32)),
            "faces": _packed(faces.astype(np.uint32)), "values": _packed(values.astype(np.uint8))}
