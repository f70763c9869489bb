"""Folder evaluation: per-case rows, missing predictions, summary statistics, CSV/JSON, CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from pcc.challenge.evaluation import evaluate_folders, load_evaluation_json, summarize
from pcc.challenge.metrics import score_case
from pcc.cli import main
from pcc.io import write_volume
from pcc.volume import Volume

SPACING = np.array([0.5, 0.5, 0.8])


def make_case(rng, shape=(30, 28, 24)):
    idx = np.indices(shape).astype(float)
    c = np.asarray(shape) / 2
    r = np.sqrt(sum(((idx[a] - c[a]) * SPACING[a]) ** 2 for a in range(3)))
    shell = (r > 4.5) & (r < 6.5)
    hole = (idx[2] - c[2]) * SPACING[2] > 2.5 + rng.uniform(0, 1)
    return shell & ~hole, shell & hole  # defective, implant


def write(path: Path, mask: np.ndarray, origin=(10.0, -5.0, 3.0)):
    write_volume(path, Volume(mask.astype(np.uint8), np.diag(SPACING), np.asarray(origin)))


@pytest.fixture()
def folders(tmp_path):
    rng = np.random.default_rng(0)
    gt_dir, def_dir, pred_dir = (tmp_path / n for n in ("gt", "defective", "pred"))
    for d in (gt_dir, def_dir, pred_dir):
        d.mkdir()
    truth = {}
    for name in ("001", "002", "003", "004"):
        defective, implant = make_case(rng)
        write(gt_dir / f"{name}.nrrd", implant)
        write(def_dir / f"{name}.nrrd", defective)
        truth[name] = (defective, implant)
    write(pred_dir / "001.nrrd", truth["001"][1])  # perfect
    write(pred_dir / "002.nii.gz", ndimage.binary_dilation(truth["002"][1]))  # other format, dilated
    (pred_dir / "003.nrrd").write_bytes(b"not an nrrd file")  # unreadable
    # 004 missing; an extra prediction without ground truth
    write(pred_dir / "999.nrrd", truth["001"][1])
    return pred_dir, gt_dir, def_dir, truth


def test_evaluate_folders_rows_and_missing(folders):
    pred_dir, gt_dir, def_dir, truth = folders
    ev = evaluate_folders(pred_dir, gt_dir, def_dir)
    assert [c.case for c in ev.cases] == ["001", "002", "003", "004"]
    first, second, unreadable, missing = ev.cases
    assert (first.scores.dsc, first.scores.bdsc, first.scores.hd, first.scores.hd95) == (1.0, 1.0, 0.0, 0.0)
    expected = score_case(ndimage.binary_dilation(truth["002"][1]), truth["002"][1], truth["002"][0], SPACING)
    assert second.scores == expected and 0.5 < expected.dsc < 1
    for row in (unreadable, missing):
        assert row.scores.dsc == 0 and row.scores.bdsc == 0 and math.isinf(row.scores.hd)
    assert [m["case"] for m in ev.missing] == ["003", "004"]
    assert "unreadable" in ev.missing[0]["reason"] and "no prediction" in ev.missing[1]["reason"]
    assert ev.extra_predictions == ["999"]


def test_csv_and_json(folders, tmp_path):
    pred_dir, gt_dir, def_dir, _ = folders
    ev = evaluate_folders(pred_dir, gt_dir, def_dir)
    ev.write_csv(tmp_path / "s.csv")
    ev.write_json(tmp_path / "s.json")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "case,dsc,bdsc,hd,hd95"
    rows = list(csv.DictReader(lines))
    assert len(rows) == 4 and rows[3]["hd"] == "inf" and float(rows[1]["dsc"]) == ev.cases[1].scores.dsc
    raw = json.loads((tmp_path / "s.json").read_text())  # strict JSON: no Infinity token
    assert "Infinity" not in (tmp_path / "s.json").read_text()
    assert raw["summary"]["hd"]["mean"] == "inf" and raw["summary"]["hd"]["n_inf"] == 2
    assert raw["summary"]["dsc"]["mean"] == pytest.approx(np.mean([c.scores.dsc for c in ev.cases]))
    data = load_evaluation_json(tmp_path / "s.json")
    assert math.isinf(data["cases"][3]["hd"]) and [m["case"] for m in data["missing"]] == ["003", "004"]


def test_summarize_statistics_and_inf():
    v = np.array([0.9, 0.8, 0.7, 0.95])
    s = summarize(v)
    assert s["mean"] == pytest.approx(v.mean())
    assert s["std"] == pytest.approx(v.std()) and s["variance"] == pytest.approx(v.var())
    assert s["median"] == pytest.approx(np.median(v))
    assert s["mad"] == pytest.approx(np.mean(np.abs(v - v.mean())))
    assert s["iqr"] == pytest.approx(np.percentile(v, 75) - np.percentile(v, 25))
    w = np.array([1.0, 2.0, 3.0, np.inf])
    s = summarize(w)
    assert math.isinf(s["mean"]) and math.isinf(s["std"]) and s["n_inf"] == 1
    assert s["median"] == 2.5 and s["q1"] == pytest.approx(1.75) and math.isinf(s["q3"]) and math.isinf(s["iqr"])
    assert s["finite"]["mean"] == 2.0 and s["finite"]["n"] == 3


def test_evaluate_cli(folders, tmp_path, capsys):
    pred_dir, gt_dir, def_dir, _ = folders
    status = main(["evaluate", str(pred_dir), "--gt", str(gt_dir), "--defective", str(def_dir),
                   "--csv", str(tmp_path / "out.csv"), "--json", str(tmp_path / "out.json")])
    assert status == 0
    out = capsys.readouterr()
    assert "4 case(s)" in out.out and "003, 004" in out.out and "[4/4]" in out.err
    assert (tmp_path / "out.csv").read_text().startswith("case,dsc,bdsc,hd,hd95\n")


def test_evaluate_cli_bad_input(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path), "--gt", str(tmp_path / "empty"), "--defective", str(tmp_path)]) == 2
    assert main(["evaluate", str(tmp_path), "--gt", str(tmp_path / "nope"), "--defective", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("pcc: error:") for line in err)
