"""A skull as a hospital CT with thicker slices sees it (issue 30): training inputs on a coarser slice grid.

Hospital head CTs often have 1–1.5 mm slices, where the SkullFix volumes have 0.4–0.75 mm. A training pair
whose defective skull is resampled this way (and whose implant stays on the fine grid, the truth) teaches
the network to find the true surface from a coarse scan.
"""

from __future__ import annotations

import numpy as np

from pcc.volume import Volume


def thicker_slices(volume: Volume, slice_mm: float) -> Volume:
    """The binary volume on slices about `slice_mm` thick: each run of k = round(slice_mm / slice step)
    consecutive slices (third index axis, z; slice step = the norm of the third direction row, mm) becomes one,
    bone where at least half of the run is bone. Whole slices only: the result's slices are k × the step thick
    (with the 0.625–0.66 mm slices of most SkullFix scans, 1.0 and 1.5 mm both give k = 2, i.e. 1.25–1.33 mm;
    Python rounds 2.5 to 2). The last shape[2] mod k slices, which make no whole run, are left out.

    Each coarse voxel's centre is the mean of its run's voxel centres (origin moved along the third direction
    row), so the skull stays where it was in world mm, for any direction matrix. k = 1 (slices already about
    that thick) returns the volume as is.
    """
    if slice_mm <= 0:
        raise ValueError(f"slice thickness must be positive, not {slice_mm}")
    spacing = float(volume.spacing[2])
    k = max(1, int(round(slice_mm / spacing)))
    if k == 1:
        return volume
    mask = volume.mask()
    depth = mask.shape[2] - mask.shape[2] % k
    if depth == 0:
        raise ValueError(f"the volume has fewer than {k} slices")
    runs = mask[:, :, :depth].reshape(mask.shape[0], mask.shape[1], depth // k, k).sum(axis=3, dtype=np.int32)
    coarse = (2 * runs >= k).astype(np.uint8)
    directions = np.array(volume.directions, float)
    origin = np.asarray(volume.origin, float) + 0.5 * (k - 1) * directions[2]
    directions[2] *= k
    return Volume(coarse, directions, origin, volume.space)
