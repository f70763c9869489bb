"""Scoring a folder of predicted implants against the ground truth, as the challenge does.

One row per ground-truth case. A prediction that is missing, unreadable or on another grid scores as an
empty implant (DSC 0, bDSC 0, HD and HD95 inf) and is listed under ``missing`` with the reason.

Summary statistics per metric (the ones the AutoImplant challenge design lists): mean, standard
deviation and variance (population, ddof=0), median, mean absolute deviation from the mean, first and
third quartiles and inter-quartile range (numpy's linear interpolation), over **all** cases.

How infinity is handled: an infinite HD/HD95 (empty prediction) makes that metric's mean, std, variance
and mean absolute deviation inf; median, quartiles and IQR treat inf as larger than every finite value
(a quartile that interpolates towards inf is inf). Each metric's summary also holds ``n_inf`` and the
same statistics over the finite cases only (``finite``). In JSON, inf is written as the string "inf"
(strict JSON has no infinity); in CSV as ``inf``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pcc.challenge.metrics import CaseScores, score_case
from pcc.errors import InputError
from pcc.io import VOLUME_SUFFIXES, read_volume, volume_suffix

METRICS = ("dsc", "bdsc", "hd", "hd95")
CSV_HEADER = ("case", "dsc", "bdsc", "hd", "hd95")
INF_TEXT = "inf"


@dataclass
class CaseResult:
    case: str
    scores: CaseScores
    missing: str | None = None  # why the prediction counted as empty, or None

    def value(self, metric: str) -> float:
        return float(getattr(self.scores, metric))


@dataclass
class Evaluation:
    """Per-case scores of one submission, with the cases whose prediction was missing."""

    cases: list[CaseResult]
    pred_dir: str = ""
    gt_dir: str = ""
    defective_dir: str = ""
    extra_predictions: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[dict[str, str]]:
        return [{"case": c.case, "reason": c.missing} for c in self.cases if c.missing is not None]

    def values(self, metric: str) -> np.ndarray:
        return np.array([c.value(metric) for c in self.cases], dtype=np.float64)

    def summary(self) -> dict[str, dict]:
        return {metric: summarize(self.values(metric)) for metric in METRICS}

    def to_dict(self) -> dict:
        return {
            "pred_dir": self.pred_dir,
            "gt_dir": self.gt_dir,
            "defective_dir": self.defective_dir,
            "n_cases": len(self.cases),
            "units": {"dsc": "1", "bdsc": "1", "hd": "mm", "hd95": "mm"},
            "inf_handling": "inf written as the string 'inf'; mean/std/variance/mad are inf when any case is inf; "
                            "median/quartiles/iqr order inf above all finite values; 'finite' holds the same "
                            "statistics over finite cases only",
            "cases": [{"case": c.case, **{m: c.value(m) for m in METRICS}, "missing": c.missing is not None}
                      for c in self.cases],
            "summary": self.summary(),
            "missing": self.missing,
            "extra_predictions": list(self.extra_predictions),
        }

    def write_csv(self, path: str | os.PathLike) -> None:
        from pcc.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_HEADER)
            for c in self.cases:
                writer.writerow([c.case] + [_format(c.value(m)) for m in METRICS])

    def write_json(self, path: str | os.PathLike) -> None:
        from pcc.io import atomic_path

        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(to_json_safe(self.to_dict()), indent=1) + "\n")


def summarize(values: np.ndarray) -> dict:
    """Summary statistics of one metric over cases (see the module docstring for inf handling)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    out = _stats(values)
    out["n_inf"] = int(np.isinf(values).sum())
    out["finite"] = _stats(finite)
    return out


def _stats(values: np.ndarray) -> dict:
    n = int(values.size)
    if n == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "std": nan, "median": nan, "variance": nan, "mad": nan,
                "q1": nan, "q3": nan, "iqr": nan}
    if np.all(np.isfinite(values)):
        mean = float(values.mean())
        variance = float(values.var())
        mad = float(np.abs(values - mean).mean())
    else:
        mean = variance = mad = float("inf")
    q1, median, q3 = (_quantile(values, q) for q in (0.25, 0.5, 0.75))
    iqr = q3 - q1 if math.isfinite(q3) else float("inf")
    return {"n": n, "mean": mean, "std": math.sqrt(variance), "median": median, "variance": variance,
            "mad": mad, "q1": q1, "q3": q3, "iqr": iqr}


def _quantile(values: np.ndarray, q: float) -> float:
    """numpy's default (linear) quantile, with inf ordered above finite values and never inf − inf."""
    ordered = np.sort(values)
    position = q * (ordered.size - 1)
    low = int(math.floor(position))
    high = min(low + 1, ordered.size - 1)
    frac = position - low
    a, b = float(ordered[low]), float(ordered[high])
    if frac == 0 or a == b:
        return a
    if math.isinf(b):
        return float("inf")
    return a + (b - a) * frac


def to_json_safe(value):
    """Replace inf/nan floats by the strings 'inf', '-inf', 'nan' (strict JSON has none of them)."""
    if isinstance(value, dict):
        return {k: to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def from_json_number(value) -> float:
    """A number written by to_json_safe (a float or 'inf'/'-inf'/'nan') as a float."""
    if isinstance(value, str):
        return float(value)
    return float(value)


def _format(value: float) -> str:
    return INF_TEXT if math.isinf(value) else repr(float(value))


def case_files(folder: str | os.PathLike, *, what: str) -> dict[str, Path]:
    """Volume files of a folder keyed by case name (the file name without .nrrd/.nii/.nii.gz)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{what} folder {folder} does not exist or is not a folder")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        suffix = volume_suffix(path)
        if suffix and path.is_file() and not path.name.startswith("."):
            files.setdefault(path.name[: -len(suffix)], path)
    return files


def evaluate_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, defective_dir: str | os.PathLike,
                     *, progress: Callable[[int, int, CaseResult], None] | None = None) -> Evaluation:
    """Score every ground-truth implant in gt_dir against the same-named prediction in pred_dir.

    defective_dir holds the defective skulls (same names), needed for bDSC. Reading is done in
    background threads while the previous case is scored.
    """
    gts = case_files(gt_dir, what="ground-truth implant")
    if not gts:
        raise InputError(f"no .nrrd/.nii/.nii.gz volumes in the ground-truth folder {gt_dir}")
    preds = case_files(pred_dir, what="prediction")
    defectives = case_files(defective_dir, what="defective-skull")
    lacking = [name for name in gts if name not in defectives]
    if lacking:
        raise InputError(f"no defective skull for case(s) {', '.join(lacking[:5])} in {defective_dir}: "
                         "give the folder of defective skulls that matches the ground truth")
    results = []
    names = list(gts)
    for index, (name, loaded) in enumerate(_prefetch(names, gts, defectives, preds)):
        result = _score_loaded(name, *loaded)
        results.append(result)
        if progress is not None:
            progress(index + 1, len(names), result)
    return Evaluation(results, str(pred_dir), str(gt_dir), str(defective_dir),
                      extra_predictions=sorted(set(preds) - set(gts)))


def _prefetch(names, gts, defectives, preds) -> Iterator[tuple[str, tuple]]:
    with ThreadPoolExecutor(max_workers=3) as pool:
        def submit(name):
            return (pool.submit(_read_mask, gts[name], "ground-truth implant"),
                    pool.submit(_read_mask, defectives[name], "defective skull"),
                    pool.submit(_read_prediction, preds.get(name)))

        pending = submit(names[0]) if names else None
        for i, name in enumerate(names):
            current = pending
            pending = submit(names[i + 1]) if i + 1 < len(names) else None
            yield name, tuple(f.result() for f in current)


def _read_mask(path: Path, what: str):
    volume = read_volume(path)
    return volume.spacing, np.asarray(volume.array) != 0, volume.shape


def _read_prediction(path: Path | None):
    if path is None:
        return None, "no prediction file"
    try:
        volume = read_volume(path)
    except InputError as error:
        return None, f"unreadable: {error}"
    return volume, None


def _score_loaded(name, gt_loaded, defective_loaded, pred_loaded) -> CaseResult:
    spacing, gt, shape = gt_loaded
    _, defective, defective_shape = defective_loaded
    if defective_shape != shape:
        raise InputError(f"case {name}: defective skull {defective_shape} and implant {shape} differ in size")
    pred_volume, reason = pred_loaded
    if pred_volume is not None and pred_volume.shape != shape:
        reason = f"prediction size {pred_volume.shape} differs from the ground truth's {shape}"
        pred_volume = None
    pred = np.zeros(shape, bool) if pred_volume is None else np.asarray(pred_volume.array) != 0
    return CaseResult(name, score_case(pred, gt, defective, spacing), reason)


def load_evaluation_json(path: str | os.PathLike) -> dict:
    """Read a JSON written by Evaluation.write_json, with inf restored as float."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        cases = data["cases"]
        for row in cases:
            row["case"] = str(row["case"])
            for metric in METRICS:
                row[metric] = from_json_number(row[metric])
    except FileNotFoundError:
        raise InputError(f"{path} does not exist: give the JSON written by 'pcc evaluate --json'") from None
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path} is not a 'pcc evaluate --json' result ({type(error).__name__}: {error})") from None
    data.setdefault("missing", [])
    return data


__all__ = ["CSV_HEADER", "CaseResult", "Evaluation", "METRICS", "case_files", "evaluate_folders",
           "load_evaluation_json", "summarize", "to_json_safe", "VOLUME_SUFFIXES"]
