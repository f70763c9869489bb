"""pcc.design.settings.DesignSettings: one typed object that travels with the weights and into every report;
and the surface step it switches on (pcc.design.reconstruction.smooth_points)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pcc.design.loading import SHIPPED_WEIGHTS, load_model
from pcc.design.reconstruction import smooth_points
from pcc.design.settings import DesignSettings
from pcc.errors import InputError
from pcc.geometry.cloud import PointCloud


def test_overrides_and_dicts_are_typed_and_refuse_unknown_names():
    settings = DesignSettings().with_overrides(["point_smoothing_mm=2.5", "local_passes=2", "mirror_passes=false"])
    assert (settings.point_smoothing_mm, settings.local_passes, settings.mirror_passes) == (2.5, 2, False)
    assert isinstance(settings.local_passes, int)
    assert DesignSettings.from_dict(settings.as_dict()) == settings
    assert DesignSettings.from_dict(None) == DesignSettings() == DesignSettings.from_dict({})
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        DesignSettings().with_overrides(["smoothing=1"])
    with pytest.raises(ValueError, match="true or false"):
        DesignSettings().with_overrides(["mirror_passes=maybe"])
    with pytest.raises(ValueError, match="unknown design settings"):
        DesignSettings.from_dict({"not_a_setting": 1})
    with pytest.raises(ValueError, match="local_passes takes a whole number"):
        DesignSettings().with_overrides(["local_passes=2.5"])
    with pytest.raises(ValueError, match="mirror_passes must be bool"):
        DesignSettings.from_dict({"mirror_passes": "false"})
    with pytest.raises(ValueError, match="search_rounds must be int"):
        DesignSettings.from_dict({"search_rounds": 2.7})
    assert DesignSettings.from_dict({"intact_bone_mm": 2}).intact_bone_mm == 2.0


def test_weights_carry_their_settings_into_the_model_and_the_report(tmp_path):
    """A weights file's pcc_settings become model.settings (defaults where missing), `pcc implant --report`
    records them, and a file with settings this pcc does not know is refused with a clear message."""
    from pcc.cli import main
    from pcc.examples import EXAMPLE_DEFECTIVE

    weights = torch.load(SHIPPED_WEIGHTS, map_location="cpu", weights_only=True)
    weights["pcc_settings"] = {"point_smoothing_mm": 2.5, "search_rounds": 1}
    path = tmp_path / "with_settings.pt"
    torch.save(weights, path)
    model = load_model(path, device="cpu")
    assert model.settings == DesignSettings(point_smoothing_mm=2.5, search_rounds=1)
    # the shipped weights run on the defaults, each justified in pcc/design/settings.py
    assert load_model(SHIPPED_WEIGHTS, device="cpu").settings == DesignSettings()

    report = tmp_path / "run.json"
    assert main(["implant", str(EXAMPLE_DEFECTIVE), "-o", str(tmp_path / "implant.nrrd"), "--model", str(path),
                 "--report", str(report), "--device", "cpu"]) == 0
    recorded = json.loads(report.read_text())["model"]["design_settings"]
    assert recorded == DesignSettings(point_smoothing_mm=2.5, search_rounds=1).as_dict()

    weights["pcc_settings"] = {"a_setting_from_the_future": 1.0}
    torch.save(weights, path)
    with pytest.raises(InputError, match="design settings"):
        load_model(path, device="cpu")


def test_surface_step_moves_noisy_points_onto_their_local_plane():
    """Points of a gently curved sheet (a sphere of radius 80 mm) with 0.3 mm noise along the normal end up
    nearer the true surface; their normals are unchanged; a point with too few neighbours stays put."""
    rng = np.random.default_rng(0)
    direction = rng.normal(size=(4000, 3)) * [1.0, 1.0, 0.0] + [0.0, 0.0, 4.0]
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    direction = direction[direction[:, 2] > 0.9]  # a cap of the sphere
    truth = 80.0 * direction
    noisy = truth + rng.normal(0.0, 0.3, (len(truth), 1)) * direction
    lonely = np.array([[0.0, 0.0, 200.0]])
    cloud = PointCloud(np.vstack([noisy, lonely]), np.vstack([direction, [[0.0, 0.0, 1.0]]]))
    smoothed = smooth_points(cloud, 6.0)
    error_before = np.abs(np.linalg.norm(noisy, axis=1) - 80.0).mean()
    error_after = np.abs(np.linalg.norm(smoothed.points[:-1], axis=1) - 80.0).mean()
    assert error_after < 0.5 * error_before
    assert np.array_equal(smoothed.normals, cloud.normals)
    assert np.array_equal(smoothed.points[-1], lonely[0])
