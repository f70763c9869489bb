"""A skull as a hospital CT with thicker slices sees it (issue 30): training inputs on a coarser slice grid.

Hospital head CTs often have 1–1.5 mm slices, where the SkullFix volumes have 0.4–0.75 mm. A training pair
whose defective skull is resampled this way (and whose implant stays on the fine grid, the truth) teaches
the network to find the true surface from a coarse scan.
"""

from __future__ import annotations

import numpy as np

from pcc.volume import Volume


def thicker_slices(volume: Volume, slice_mm: float) -> Volume:
    """The binary volume on slices about `slice_mm` thick: each run of k = round(slice_mm / slice spacing)
    consecutive slices (third index axis, z) becomes one, bone where at least half of the run is bone.

    The first coarse slice is centred on the middle of its run (origin moved along the slice direction), so
    the volume stays where it was in world mm. k = 1 (slices already that thick) returns the volume as is.
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
