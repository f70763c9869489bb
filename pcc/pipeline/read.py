"""Step 1 of a case: the defective skull as a binary volume, read from a skull file or segmented from a head CT."""

from __future__ import annotations

from typing import Any

import numpy as np

from pcc.errors import InputError
from pcc.pipeline.jobs import Job


def read_skull(job: Job):
    """(the job's defective skull as a binary Volume, warnings about the input, the CT in HU when the job
    asks for a review page, else None);
    InputError when the input cannot be one.

    A binary skull volume is read and checked; a CT (job.ct) is read (a DICOM series folder through
    pcc.io.dicom, or a volume file), checked (pcc.io.segment.check_ct_grid) and segmented with
    pcc.io.segment.segment_skull onto its own grid; the skull keeps the CT's header (for a DICOM series:
    its identifiers, never the patient's name), and pcc.io.segment.scan_warnings gives the warnings.
    """
    from pcc.io import read_volume
    from pcc.volume import require_binary

    if job.ct is None:
        return require_binary(read_volume(job.source), job.source), [], None
    from pcc.io.segment import check_ct_grid, scan_warnings, segment_skull

    if job.source.is_dir():
        from pcc.io.dicom import read_series

        ct = read_series(job.source, job.ct.series)
    else:
        if job.ct.series is not None:
            raise InputError("--series picks a series in a folder of DICOM files; the input is a volume file: drop --series")
        ct = read_volume(job.source)
    values = np.asarray(ct.array)
    if values.size and bool(((values == 0) | (values == 1)).all()):
        raise InputError(f"{job.source} holds only 0 and 1, a mask rather than a CT in Hounsfield units: "
                         "drop --ct to design from a binary skull")
    check_ct_grid(ct)
    skull = segment_skull(ct, low=job.ct.low_hu, high=job.ct.high_hu)
    # The CT itself is kept only for the review page, which shows it (a 512×512×Z CT is hundreds of MB).
    return ct.with_array(skull.astype("uint8")), scan_warnings(ct, skull), ct if job.review is not None else None


def ct_record(job: Job, skull) -> dict[str, Any]:
    """What the report says about a CT input: its series' identifiers (DICOM) and the segmentation's settings."""
    series_keys = ("SeriesInstanceUID", "StudyInstanceUID", "SeriesNumber", "SeriesDescription", "Modality")
    from pcc.io import segment

    record: dict[str, Any] = {"format": "DICOM series" if job.source.is_dir() else "volume",
                              "segmentation": {"low_hu": job.ct.low_hu,
                                               "high_hu": job.ct.high_hu if np.isfinite(job.ct.high_hu) else "none",
                                               "bridge_mm": segment.BRIDGE_MM, "table_min_ml": segment.TABLE_MIN_ML}}
    if job.source.is_dir():
        record["series"] = {key: skull.header.get(key) for key in series_keys}
    record["skull_voxels"] = int(skull.mask().sum())
    return record
