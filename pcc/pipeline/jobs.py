"""What a run does: one Job per case (its input and the outputs asked for), a folder's jobs, a part of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pcc.errors import InputError


@dataclass(frozen=True)
class CtInput:
    """How to read a job whose input is a head CT in Hounsfield units rather than a binary skull.

    series: the DICOM series to read (SeriesNumber or SeriesInstanceUID) when the source folder holds
        several; None when it holds one, or when the source is a .nrrd/.nii(.gz) CT.
    low_hu, high_hu: bone threshold of the segmentation (pcc.io.segment.segment_skull).
    """

    series: str | None = None
    low_hu: float = 100.0
    high_hu: float = float("inf")


@dataclass(frozen=True)
class Job:
    """One case: its input and the outputs asked for (None: not asked for).

    ct: None when the source is a binary defective skull; otherwise the source is a head CT (a DICOM
        series folder or a .nrrd/.nii(.gz) volume in HU), segmented first, and every output lies on the
        CT's own grid and in its patient coordinates.
    """

    source: Path
    output: Path
    stl: Path | None = None
    preview: Path | None = None
    ct: CtInput | None = None
    confidence: Path | None = None
    review: Path | None = None

    @property
    def name(self) -> str:
        from pcc.io import volume_suffix

        return self.source.name[: -len(volume_suffix(self.source))] or self.source.name

    def outputs(self) -> list[Path]:
        return [p for p in (self.output, self.stl, self.preview, self.confidence, self.review) if p is not None]

    def finished(self) -> bool:
        return all(p.is_file() for p in self.outputs())


def folder_inputs(folder: Path) -> list[Path]:
    """The volumes (.nrrd, .nii, .nii.gz) of a folder, sorted by name; hidden files are ignored."""
    from pcc.io import is_volume_path

    return sorted(p for p in folder.iterdir() if p.is_file() and is_volume_path(p) and not p.name.startswith("."))


def plan_folder(source: Path, out_dir: Path, *, stl_dir: Path | None = None, preview_dir: Path | None = None,
                confidence_dir: Path | None = None, review_dir: Path | None = None) -> list[Job]:
    """Jobs for every volume of a folder: same file names in out_dir (and confidence_dir), <name>.stl /
    <name>.png / <name>.html beside."""
    inputs = folder_inputs(source)
    if not inputs:
        from pcc.io.dicom import list_series

        if list_series(source):
            raise InputError(f"{source} holds a DICOM series: add --ct to segment the CT and design its implant")
        raise InputError(f"{source} holds no .nrrd/.nii/.nii.gz volumes: give a folder of defective skulls")
    jobs = []
    for path in inputs:
        job = Job(path, out_dir / path.name)
        jobs.append(Job(path, out_dir / path.name,
                        stl_dir / f"{job.name}.stl" if stl_dir else None,
                        preview_dir / f"{job.name}.png" if preview_dir else None,
                        confidence=confidence_dir / path.name if confidence_dir else None,
                        review=review_dir / f"{job.name}.html" if review_dir else None))
    return jobs


def select_part(items: list, num_parts: int, part_id: int) -> list:
    """Part `part_id` (0-based) of `num_parts` contiguous, near-equal parts of a sorted list.

    Every item falls in exactly one part; the parts' sizes differ by at most one.
    """
    if num_parts < 1:
        raise InputError(f"--num-parts must be at least 1, got {num_parts}")
    if not 0 <= part_id < num_parts:
        raise InputError(f"--part-id must be between 0 and {num_parts - 1} for --num-parts {num_parts}, got {part_id}")
    count = len(items)
    start = part_id * count // num_parts
    stop = (part_id + 1) * count // num_parts
    return list(items[start:stop])
