"""Preview pictures: a real PNG with shaded views; the rasterizer draws what is in front."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TILTED_DIRECTIONS, bone_coloured, hollow_ellipsoid, implant_coloured, preview_panels

from pcc.errors import InputError
from pcc.outputs.preview import BONE, IMPLANT, render_preview
from pcc.outputs.rendering import render, shaded
from pcc.volume import Volume


def case(directions=np.eye(3)):
    full = hollow_ellipsoid(hole_radius=0.0)
    defective = hollow_ellipsoid(hole_radius=8.0)
    origin = np.array([-20.0, 10.5, 3.25])
    return Volume(defective, directions, origin), Volume((full & ~defective).astype(np.uint8), directions, origin)


def test_preview_writes_a_picture_showing_bone_and_implant(tmp_path):
    import matplotlib.image

    defective, implant = case(TILTED_DIRECTIONS)
    path = tmp_path / "case.png"
    render_preview(defective, implant, path, title="synthetic")
    image = matplotlib.image.imread(path)[..., :3]
    assert image.shape[0] > 600 and image.shape[1] > 1000
    # every 3-D view and slice shows the cap in the implant's blue beside the bone (the legend is left out)
    for name, panel in preview_panels(image).items():
        assert implant_coloured(panel).mean() > 0.005 and bone_coloured(panel).mean() > 0.02, name
    # where it is drawn: the hole is in the middle of the top view and of the view facing the defect
    for name in ("view0", "view3"):
        panel = preview_panels(image)[name]
        row, column = panel.shape[0] // 2, panel.shape[1] // 2
        assert implant_coloured(panel[row - 10 : row + 10, column - 10 : column + 10]).all(), name
    # shaded (many distinct tones, not flat masks)
    bone = bone_coloured(image)
    assert len(np.unique(image[bone].round(2), axis=0)) > 50
    assert not list(tmp_path.glob(".*tmp*"))


def test_preview_of_an_empty_implant_shows_the_skull(tmp_path):
    import matplotlib.image

    defective, implant = case()
    render_preview(defective, implant.with_array(np.zeros_like(implant.array)), tmp_path / "empty.png")
    image = matplotlib.image.imread(tmp_path / "empty.png")[..., :3]
    for name, panel in preview_panels(image).items():
        assert not implant_coloured(panel).any(), name  # nothing drawn as implant
        assert bone_coloured(panel).mean() > 0.05, name  # the skull is drawn in every view and slice


def test_colour_checks_follow_the_palette():
    assert implant_coloured(IMPLANT[None]).all() and not implant_coloured(BONE[None]).any()
    assert bone_coloured(BONE[None]).all() and not bone_coloured(IMPLANT[None]).any()


def test_preview_needs_png_and_one_grid(tmp_path):
    defective, implant = case()
    with pytest.raises(InputError, match="png"):
        render_preview(defective, implant, tmp_path / "x.jpg")
    moved = Volume(implant.array, implant.directions, implant.origin + 5.0)
    with pytest.raises(InputError, match="grid"):
        render_preview(defective, moved, tmp_path / "x.png")


def test_rasterizer_keeps_the_nearest_surface():
    # two unit-normal squares facing the viewer (looking along -z), the blue one nearer
    def square(z, colour):
        vertices = np.array([[0, 0, z], [1, 0, z], [1, 1, z], [0, 1, z]], float)
        faces = np.array([[0, 1, 2], [0, 2, 3]])
        mesh = shaded(vertices, faces, colour)
        normals = np.tile([0.0, 0.0, 1.0], (4, 1))
        return type(mesh)(vertices, faces, normals, np.asarray(colour))

    far, near = square(0.0, BONE), square(1.0, IMPLANT)
    forward, up = np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0])
    image = render([far, near], forward, up, pixels=32, supersample=1, margin=0.0)
    centre = image[16, 16]
    assert centre[2] > centre[0]  # the implant's blue wins
    image = render([near, far], forward, up, pixels=32, supersample=1, margin=0.0)
    assert image[16, 16][2] > image[16, 16][0]  # whatever the drawing order
