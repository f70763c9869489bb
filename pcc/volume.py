"""A volume with its geometry: the one type every pcc function passes around.

Index order is (x, y, z) as pynrrd returns it: ``array[i, j, k]``.
World coordinates are millimetres in the file's ``space`` (usually left-posterior-superior):

    world = origin + i * directions[0] + j * directions[1] + k * directions[2]

``directions`` holds one row per array axis, exactly as NRRD's ``space directions``; the rows need
not be orthogonal to the coordinate axes (gantry tilt).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Volume:
    """A 3-D array on a grid placed in world space (mm).

    Attributes:
        array: (X, Y, Z) array of any dtype.
        directions: (3, 3) float64; row a is the world step (mm) of one voxel along array axis a.
        origin: (3,) float64 world position (mm) of voxel (0, 0, 0)'s centre.
        space: the NRRD space name, e.g. "left-posterior-superior".
        header: the original file header (kept so writers can preserve it).
    """

    array: np.ndarray
    directions: np.ndarray
    origin: np.ndarray
    space: str = "left-posterior-superior"
    header: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a Volume needs a 3-D array, got shape {self.array.shape}")
        if np.shape(self.directions) != (3, 3) or np.shape(self.origin) != (3,):
            raise ValueError("directions must be (3, 3) and origin (3,)")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along each array axis in mm (the norm of each direction row)."""
        return np.linalg.norm(self.directions, axis=1)

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in mm³ (|det| of the direction matrix)."""
        return float(abs(np.linalg.det(self.directions)))

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) voxel-index → world-mm matrix acting on column vectors (i, j, k, 1)."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.directions.T
        matrix[:3, 3] = self.origin
        return matrix

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """(N, 3) continuous voxel indices → (N, 3) world mm."""
        return np.einsum("nc,cw->nw", np.asarray(ijk, dtype=np.float64), self.directions) + self.origin

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) world mm → (N, 3) continuous voxel indices."""
        return np.linalg.solve(self.directions.T, (np.asarray(xyz, dtype=np.float64) - self.origin).T).T

    def index_box(self, lower_mm: np.ndarray, upper_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index bounds [lower, upper) of the voxels covering the world box lower_mm..upper_mm (3,) mm,
        clipped to the array (upper ≤ lower on some axis when the box misses it). The world box's image
        in index space is a parallelepiped (sheared grids): its eight corners bound it."""
        corners = np.array(list(itertools.product(*zip(lower_mm, upper_mm))), dtype=np.float64)
        index = self.world_to_index(corners)
        lower = np.maximum(np.floor(index.min(axis=0)).astype(int), 0)
        upper = np.minimum(np.ceil(index.max(axis=0)).astype(int) + 1, self.shape)
        return lower, upper

    def with_array(self, array: np.ndarray) -> "Volume":
        """The same grid holding another array of the same shape."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from the grid's {self.array.shape}")
        return Volume(array, self.directions, self.origin, self.space, self.header)

    def same_grid(self, other: "Volume", *, tol_mm: float = 1e-3) -> bool:
        """True when both volumes have the same shape and the same voxel placement (within tol_mm)."""
        return (
            self.shape == other.shape
            and np.allclose(self.directions, other.directions, atol=tol_mm)
            and np.allclose(self.origin, other.origin, atol=tol_mm)
        )

    def mask(self, box: tuple[slice, ...] | None = None) -> np.ndarray:
        """The array as a boolean mask (nonzero = inside); of the index box `box` only when given
        (e.g. pcc.geometry.masks.box_slices(lower, upper)), without a grid-sized temporary."""
        return np.asarray((self.array if box is None else self.array[box]) != 0)


def require_binary(volume: Volume, name: object = "the volume") -> Volume:
    """Check that a volume is a usable binary mask (0/1, finite, neither empty nor full).

    Raises InputError naming `name` otherwise.
    """
    from pcc.errors import InputError

    array = np.asarray(volume.array)
    if array.dtype.kind == "f" and array.size and not np.isfinite(array.min() + array.max()):  # NaN propagates
        raise InputError(f"{name} contains NaN or infinite values; pcc needs a binary 0/1 mask")
    count = np.count_nonzero(array)
    if array.dtype.kind in "iu":  # integers are 0/1 when they lie in [0, 1] (whole-array passes, no temporary)
        binary = not array.size or (array.min() >= 0 and array.max() <= 1)
    else:
        binary = array.dtype == bool or count == np.count_nonzero(array == 1)
    if not binary:
        raise InputError(f"{name} is not binary (values other than 0 and 1): for a head CT in Hounsfield units use "
                         "pcc implant --ct (or pcc segment CT -o SKULL first); else threshold it to a 0/1 mask")
    if count == 0:
        raise InputError(f"{name} is empty (no voxel is 1); give a binary mask of the skull or implant")
    if count == array.size:
        raise InputError(f"{name} has every voxel set to 1; give a binary mask of the skull, not a filled box")
    return volume
