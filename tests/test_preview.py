"""Preview pictures: a real PNG with shaded views; the rasterizer draws what is in front."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TILTED_DIRECTIONS, hollow_ellipsoid
from pcc.errors import InputError
from pcc.preview import BONE, IMPLANT, _shaded, render, render_preview
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
    # both colours appear, shaded (many distinct tones, not flat masks)
    blue = (image[..., 2] > image[..., 0] + 0.25)
    bone = (image[..., 0] > 0.5) & (np.abs(image[..., 0] - image[..., 2]) < 0.25)
    assert blue.mean() > 0.005 and bone.mean() > 0.02
    assert len(np.unique(image[bone].round(2), axis=0)) > 50
    assert not list(tmp_path.glob(".*tmp*"))


def test_preview_of_an_empty_implant_shows_the_skull(tmp_path):
    defective, implant = case()
    render_preview(defective, implant.with_array(np.zeros_like(implant.array)), tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 20_000


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
        mesh = _shaded(vertices, faces, colour)
        normals = np.tile([0.0, 0.0, 1.0], (4, 1))
        return type(mesh)(vertices, faces, normals, np.asarray(colour))

    far, near = square(0.0, BONE), square(1.0, IMPLANT)
    forward, up = np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0])
    image = render([far, near], forward, up, pixels=32, supersample=1, margin=0.0)
    centre = image[16, 16]
    assert centre[2] > centre[0]  # the implant's blue wins
    image = render([near, far], forward, up, pixels=32, supersample=1, margin=0.0)
    assert image[16, 16][2] > image[16, 16][0]  # whatever the drawing order
