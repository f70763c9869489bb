"""Ranking challenge submissions, as the AutoImplant organizers do.

Each metric's mean over cases is ranked across submissions (DSC and bDSC descending, HD and HD95
ascending; ties share the best rank, "1224" competition ranking). The final score is the mean of the four
ranks, lower is better. Submissions that miss cases (a prediction missing or unreadable, or cases that
other submissions have and this one lacks) are excluded and listed with the reason. Paired t-tests
(``scipy.stats.ttest_rel``, two-sided) compare the top submission with each other one, per metric, on the
per-case values of the cases both have; cases where either value is infinite are left out of a test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from pcc.challenge.evaluation import METRICS, load_evaluation_json
from pcc.errors import InputError

DESCENDING = {"dsc": True, "bdsc": True, "hd": False, "hd95": False}


@dataclass
class Submission:
    """Per-case values of one submission: values[metric][case]."""

    name: str
    values: dict[str, dict[str, float]]
    missing: list[str] = field(default_factory=list)

    @property
    def cases(self) -> set[str]:
        return set(self.values["dsc"])

    def mean(self, metric: str) -> float:
        return float(np.mean(list(self.values[metric].values())))

    @classmethod
    def from_json(cls, path: str | Path, name: str | None = None) -> "Submission":
        data = load_evaluation_json(path)
        values = {m: {row["case"]: row[m] for row in data["cases"]} for m in METRICS}
        missing = [str(item["case"]) if isinstance(item, dict) else str(item) for item in data["missing"]]
        return cls(name or _default_name(Path(path)), values, missing)


@dataclass
class Ranking:
    table: list[dict]  # ranked submissions, best first
    excluded: list[dict]  # {"name", "reason"}
    ttests: list[dict]  # {"metric", "top", "other", "t", "p", "n"}

    def to_dict(self) -> dict:
        return {"metrics_order": {m: "descending" if DESCENDING[m] else "ascending" for m in METRICS},
                "ranking": self.table, "excluded": self.excluded, "ttests": self.ttests}


def rank_submissions(submissions: list[Submission]) -> Ranking:
    """Rank submissions by the mean rank of their metric means (see the module docstring)."""
    if not submissions:
        raise InputError("no submissions to rank: give one or more 'pcc evaluate --json' files")
    names = [s.name for s in submissions]
    if len(set(names)) != len(names):
        raise InputError("two submissions have the same name: give distinct names with --names")
    all_cases = set().union(*(s.cases for s in submissions))
    kept, excluded = [], []
    for s in submissions:
        lacking = sorted(all_cases - s.cases)
        if s.missing:
            excluded.append({"name": s.name, "reason": f"missing predictions for {len(s.missing)} case(s): "
                             + ", ".join(sorted(s.missing)[:10])})
        elif lacking:
            excluded.append({"name": s.name, "reason": f"lacks {len(lacking)} case(s) others have: "
                             + ", ".join(lacking[:10])})
        else:
            kept.append(s)
    table = []
    if kept:
        means = {m: np.array([s.mean(m) for s in kept]) for m in METRICS}
        ranks = {m: _competition_rank(-means[m] if DESCENDING[m] else means[m]) for m in METRICS}
        mean_rank = np.mean([ranks[m] for m in METRICS], axis=0)
        final = _competition_rank(mean_rank)
        order = sorted(range(len(kept)), key=lambda i: (mean_rank[i], kept[i].name))
        for i in order:
            row = {"name": kept[i].name, "position": int(final[i]), "mean_rank": float(mean_rank[i]),
                   "n_cases": len(kept[i].cases)}
            for m in METRICS:
                row[m] = float(means[m][i])
                row[f"rank_{m}"] = int(ranks[m][i])
            table.append(row)
    ttests = []
    if len(table) >= 2:
        by_name = {s.name: s for s in kept}
        top = by_name[table[0]["name"]]
        for row in table[1:]:
            other = by_name[row["name"]]
            for m in METRICS:
                ttests.append({"metric": m, "top": top.name, "other": other.name, **paired_ttest(top, other, m)})
    return Ranking(table, excluded, ttests)


def paired_ttest(a: Submission, b: Submission, metric: str) -> dict:
    """Two-sided paired t-test of a vs b on the per-case values both have (finite pairs only)."""
    common = sorted(a.cases & b.cases)
    x = np.array([a.values[metric][c] for c in common])
    y = np.array([b.values[metric][c] for c in common])
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2:
        return {"t": float("nan"), "p": float("nan"), "n": int(x.size)}
    if np.array_equal(x, y):  # identical values: no evidence of any difference
        return {"t": 0.0, "p": 1.0, "n": int(x.size)}
    with warnings.catch_warnings():  # constant differences: scipy warns about precision, t is ±inf
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(x, y)
    return {"t": float(result.statistic), "p": float(result.pvalue), "n": int(x.size)}


def rank_files(paths: list[str | Path], names: list[str] | None = None) -> Ranking:
    if names is not None and len(names) != len(paths):
        raise InputError(f"--names gives {len(names)} name(s) for {len(paths)} file(s): give one name per file")
    submissions = [Submission.from_json(p, names[i] if names else None) for i, p in enumerate(paths)]
    if names is None and len({s.name for s in submissions}) != len(submissions):
        for s, p in zip(submissions, paths):
            s.name = str(p)
    return rank_submissions(submissions)


def format_ranking(ranking: Ranking) -> str:
    lines = []
    if ranking.table:
        lines.append(f"{'pos':>3}  {'submission':<24} {'DSC':>7} {'bDSC':>7} {'HD mm':>8} {'HD95 mm':>8}  ranks(D,bD,H,H95)  mean rank")
        for r in ranking.table:
            ranks = ",".join(str(r[f"rank_{m}"]) for m in METRICS)
            lines.append(f"{r['position']:>3}  {r['name'][:24]:<24} {r['dsc']:7.4f} {r['bdsc']:7.4f} "
                         f"{_num(r['hd']):>8} {_num(r['hd95']):>8}  {ranks:<17}  {r['mean_rank']:.2f}")
    else:
        lines.append("no submission could be ranked")
    for e in ranking.excluded:
        lines.append(f"excluded {e['name']}: {e['reason']}")
    if ranking.ttests:
        lines.append("paired t-tests (scipy.stats.ttest_rel, two-sided), top submission vs each other:")
        for t in ranking.ttests:
            lines.append(f"  {t['top']} vs {t['other']} {t['metric']:>5}: t={t['t']:.3f} p={t['p']:.4g} (n={t['n']})")
    return "\n".join(lines)


def _num(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3f}"


def _competition_rank(values: np.ndarray) -> np.ndarray:
    """1-based ranks, smaller value = better rank; ties share the best rank."""
    return stats.rankdata(values, method="min").astype(int)


def _default_name(path: Path) -> str:
    stem = path.name[:-5] if path.name.lower().endswith(".json") else path.stem
    if stem.lower() in ("summary", "results", "evaluation", "scores", "metrics") and path.parent.name:
        return path.parent.name
    return stem


__all__ = ["Ranking", "Submission", "format_ranking", "paired_ttest", "rank_files", "rank_submissions"]
