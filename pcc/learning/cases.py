"""Which cases train and which are held out: the real pairs of a data folder, the fixed development split,
and the pcc-made defects (pcc.learning.defects) cut into the training skulls.

Folder layout (same file names in each): ROOT/defective_skull/NNN.nrrd, ROOT/implant/NNN.nrrd
(ROOT/complete_skull/ is optional).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path


def case_names(root: Path) -> list[str]:
    """Case file names present in both defective_skull/ and implant/ (sorted)."""
    defective = {p.name for p in (root / "defective_skull").glob("*.nrrd")}
    implant = {p.name for p in (root / "implant").glob("*.nrrd")}
    names = sorted(defective & implant)
    if not names:
        raise FileNotFoundError(f"no cases in {root}: expected defective_skull/*.nrrd and implant/*.nrrd")
    return names


def default_validation_split(names: list[str], count: int = 10) -> list[str]:
    """Every k-th case (k = len // count) from the 4th on, spread over the sorted names: a fixed split.

    For the 70 SkullFix cases: 005 018 028 038 048 061 073 081 089 096.
    """
    step = max(1, len(names) // count)
    return names[min(3, step - 1) :: step][:count]


@dataclass(frozen=True)
class SyntheticDefect:
    """A pcc-made defect (pcc.learning.defects) cut into the complete skull (defective ∪ implant) of case `source`.

    slices_mm > 0: the defective skull is seen as a CT with slices this thick (pcc.learning.slices) while the
    implant stays on the fine grid (the truth the network should find from a coarse scan).
    """

    source: str
    shape: str
    index: int
    slices_mm: float = 0.0

    @property
    def name(self) -> str:
        coarse = f"_z{self.slices_mm:g}" if self.slices_mm else ""
        return f"{Path(self.source).stem}_{self.shape}_{self.index}{coarse}"

    @property
    def cache_key(self) -> str:
        """The name, plus the shape's revision once its definition has changed (pcc.learning.defects.SHAPE_REVISIONS)."""
        from pcc.learning.defects import SHAPE_REVISIONS

        revision = SHAPE_REVISIONS[self.shape]
        return self.name if revision == 1 else f"{self.name}|r{revision}"

    @property
    def seed(self) -> int:
        return zlib.crc32(f"{self.source}|{self.shape}|{self.index}".encode())


def synthetic_defects(names: list[str], per_skull: int) -> list[SyntheticDefect]:
    """`per_skull` defects for each named case, cycling through the seven shapes of pcc.learning.defects.SHAPES."""
    from pcc.learning.defects import SHAPES

    return [
        SyntheticDefect(name, SHAPES[(i * per_skull + k) % len(SHAPES)], k)
        for i, name in enumerate(names) for k in range(per_skull)
    ]


def hard_defects(names: list[str], per_skull: int, *, first_index: int, slices_mm: list[float]) -> list[SyntheticDefect]:
    """`per_skull` more defects for each named case (issue 30's harder training defects), cycling through
    pcc.learning.defects.HARD_SHAPES; their indices start at `first_index` (after the base defects, so each is a
    fresh draw; a different first_index renames and recuts them all), and they cycle through `slices_mm` (0: the
    scan's own grid; e.g. 1.5: seen as a CT with thicker slices, pcc.learning.slices.thicker_slices)."""
    from pcc.learning.defects import HARD_SHAPES as shapes

    if not slices_mm:
        raise ValueError("slices_mm needs at least one entry (0 for the scan's own grid)")
    return [
        SyntheticDefect(name, shapes[(i * per_skull + k) % len(shapes)], first_index + k,
                        float(slices_mm[(i + k) % len(slices_mm)]))
        for i, name in enumerate(names) for k in range(per_skull)
    ]
