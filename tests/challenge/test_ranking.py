"""Ranking submissions: mean ranks, exclusion of incomplete submissions, paired t-tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from pcc.challenge.evaluation import to_json_safe
from pcc.challenge.ranking import Submission, paired_ttest, rank_files, rank_submissions
from pcc.cli import main

CASES = [f"{i:03d}" for i in range(8)]


def submission(name, dsc, bdsc, hd, hd95, missing=()):
    values = {m: dict(zip(CASES, np.broadcast_to(v, len(CASES)).astype(float)))
              for m, v in (("dsc", dsc), ("bdsc", bdsc), ("hd", hd), ("hd95", hd95))}
    return Submission(name, values, list(missing))


def write_json(path, sub: Submission):
    cases = [{"case": c, **{m: sub.values[m][c] for m in ("dsc", "bdsc", "hd", "hd95")}} for c in sub.values["dsc"]]
    path.write_text(json.dumps(to_json_safe({"cases": cases, "missing": [{"case": c, "reason": "x"} for c in sub.missing]})))


def test_mean_ranks_directions_and_ties():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.01, len(CASES))
    a = submission("A", 0.90 + noise, 0.92 + noise, 5.0 + noise, 2.0 + noise)
    b = submission("B", 0.85 + noise, 0.93 + noise, 4.0 + noise, 2.5 + noise)  # better bDSC and HD, worse DSC, HD95
    c = submission("C", 0.80 + noise, 0.80 + noise, 9.0 + noise, 3.0 + noise)
    r = rank_submissions([c, b, a])
    rows = {row["name"]: row for row in r.table}
    assert (rows["A"]["rank_dsc"], rows["A"]["rank_bdsc"], rows["A"]["rank_hd"], rows["A"]["rank_hd95"]) == (1, 2, 2, 1)
    assert (rows["B"]["rank_dsc"], rows["B"]["rank_bdsc"], rows["B"]["rank_hd"], rows["B"]["rank_hd95"]) == (2, 1, 1, 2)
    assert rows["A"]["mean_rank"] == rows["B"]["mean_rank"] == 1.5
    assert rows["A"]["position"] == rows["B"]["position"] == 1  # tie shares the best position
    assert rows["C"]["position"] == 3 and rows["C"]["mean_rank"] == 3.0
    assert [row["name"] for row in r.table][2] == "C"


def test_excludes_incomplete_submissions():
    a = submission("A", 0.9, 0.9, 3.0, 2.0)
    b = submission("B", 0.95, 0.95, 2.0, 1.0, missing=["003"])
    c = submission("C", 0.95, 0.95, 2.0, 1.0)
    for m in c.values:
        del c.values[m]["007"]
    r = rank_submissions([a, b, c])
    assert [row["name"] for row in r.table] == ["A"]
    reasons = {e["name"]: e["reason"] for e in r.excluded}
    assert "003" in reasons["B"] and "007" in reasons["C"]
    assert r.ttests == []


def test_paired_ttests_match_scipy():
    rng = np.random.default_rng(2)
    x = rng.normal(0.9, 0.02, len(CASES))
    y = x - 0.01 + rng.normal(0, 0.01, len(CASES))
    a = submission("A", x, x, 2 - x, 1 - x)
    b = submission("B", y, y, 2 - y, 1 - y)
    r = rank_submissions([b, a])
    assert r.table[0]["name"] == "A"
    expected = stats.ttest_rel(x, y)
    dsc = next(t for t in r.ttests if t["metric"] == "dsc")
    assert (dsc["top"], dsc["other"], dsc["n"]) == ("A", "B", len(CASES))
    assert dsc["t"] == pytest.approx(expected.statistic) and dsc["p"] == pytest.approx(expected.pvalue)
    assert len(r.ttests) == 4
    # infinite values are left out of a test
    b.values["hd"]["000"] = np.inf
    assert paired_ttest(a, b, "hd")["n"] == len(CASES) - 1


def test_rank_cli(tmp_path, capsys):
    write_json(tmp_path / "a.json", submission("a", 0.9, 0.9, 3.0, 2.0))
    write_json(tmp_path / "b.json", submission("b", 0.8, 0.8, np.inf, 3.0))
    write_json(tmp_path / "c.json", submission("c", 0.99, 0.99, 1.0, 1.0, missing=["001"]))
    status = main(["rank", str(tmp_path / "a.json"), str(tmp_path / "b.json"), str(tmp_path / "c.json"),
                   "--names", "alpha", "beta", "gamma", "--json", str(tmp_path / "rank.json")])
    out = capsys.readouterr().out
    assert status == 0 and "excluded gamma" in out and "alpha vs beta" in out
    data = json.loads((tmp_path / "rank.json").read_text())
    assert [row["name"] for row in data["ranking"]] == ["alpha", "beta"] and data["ranking"][1]["hd"] == "inf"
    assert rank_files([tmp_path / "a.json", tmp_path / "b.json"]).table[0]["name"] == "a"


def test_rank_cli_bad_input(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{}")
    assert main(["rank", str(tmp_path / "bad.json")]) == 2
    assert main(["rank", str(tmp_path / "none.json")]) == 2
    write_json(tmp_path / "a.json", submission("a", 0.9, 0.9, 3.0, 2.0))
    assert main(["rank", str(tmp_path / "a.json"), "--names", "x", "y"]) == 2
    assert all(line.startswith("pcc: error:") for line in capsys.readouterr().err.strip().splitlines())
