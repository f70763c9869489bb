"""Where the real data sets are found: one place for the tests and the tools.

    from pcc.shared_data import data_root
    root = data_root() / "skullfix" / "training_set"

The folder is $PCC_DATA when set, else `../shared/data` beside the repository's checkout. No data set is
stored in the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """$PCC_DATA, or ../shared/data beside the checkout (it may not exist: callers say so and skip)."""
    given = os.environ.get("PCC_DATA")
    return Path(given).expanduser() if given else REPOSITORY.parent / "shared" / "data"


def skullfix_training_set() -> Path:
    """The SkullFix training set's folder (complete_skull/, defective_skull/, implant/) under data_root()."""
    return data_root() / "skullfix" / "training_set"
