"""The plate a planner asks for, through the whole command on the bundled example case (issue 32): a
uniform thickness and perforations in both the volume and the STL, what was applied in the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from pcc.cli import main
from pcc.design.plate import plate_thickness_mm
from pcc.examples import EXAMPLE_DEFECTIVE
from pcc.io import read_volume


@pytest.mark.slow
def test_example_plate_of_5_mm_with_holes_in_volume_stl_and_report(tmp_path):
    out = tmp_path / "plate.nrrd"
    stl, report = tmp_path / "plate.stl", tmp_path / "run.json"
    assert main(["implant", str(EXAMPLE_DEFECTIVE), "-o", str(out), "--stl", str(stl), "--report", str(report),
                 "--thickness", "5", "--holes", "2:10"]) == 0
    case = json.loads(report.read_text())["cases"][0]
    holes = case["holes"]
    assert holes["count"] >= 5 and holes["diameter_mm"] == 2.0 and holes["spacing_mm"] == 10.0
    assert len(holes["centres_mm"]) == holes["count"]
    assert abs(case["plate"]["measured_mm"]["median"] - 5.0) <= 0.3 and case["plate"]["thickness_mm"] == 5.0
    # the volume written is the plate: measured again from the file, away from the rim
    plate, defective = read_volume(out), read_volume(EXAMPLE_DEFECTIVE)
    assert abs(float(np.median(plate_thickness_mm(plate, defective))) - 5.0) <= 0.3
    assert not np.any(plate.mask() & defective.mask())
    # the STL: one watertight body with one tunnel per hole, every check passed
    mesh = trimesh.load(stl)
    assert mesh.is_watertight and len(mesh.split(only_watertight=False)) == 1
    assert (2 - mesh.euler_number) // 2 == holes["count"]
    assert case["mesh"]["ok"] and case["mesh"]["smoothing"] == "taubin"
    assert json.loads(report.read_text())["options"]["finish"]["holes"] == [2.0, 10.0]


def test_mesh_command_takes_holes_and_raw_surface(tmp_path, capsys):
    """pcc mesh: --holes needs the defective skull (exit 2, nothing written); --no-smooth writes the raw surface."""
    from pcc.examples import EXAMPLE_IMPLANT

    out = tmp_path / "i.stl"
    assert main(["mesh", str(EXAMPLE_IMPLANT), "-o", str(out), "--holes", "2:10"]) == 2
    assert "--defective" in capsys.readouterr().err and not out.exists()
    assert main(["mesh", str(EXAMPLE_IMPLANT), "-o", str(out), "--no-smooth"]) == 0
    raw = trimesh.load(out)
    assert main(["mesh", str(EXAMPLE_IMPLANT), "-o", str(tmp_path / "s.stl")]) == 0
    smooth = trimesh.load(tmp_path / "s.stl")
    assert np.degrees(raw.face_adjacency_angles).mean() > 2 * np.degrees(smooth.face_adjacency_angles).mean()
