"""A small z-buffer rasterizer (numpy only, no OpenGL or display) for the preview's 3-D views.

    image = render([shaded(vertices, faces, colour)], forward, up)   # (pixels, pixels, 3) floats in [0, 1]

Orthographic projection, smooth shading with Blinn-Phong lighting and depth cueing, supersampled.
Meshes are in world mm; only front faces are drawn (the meshes are closed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BACKGROUND = ("#15191e", "#2b323b")
VIEW_PIXELS = 420
SUPERSAMPLE = 2


@dataclass(frozen=True)
class ShadedMesh:
    vertices: np.ndarray  # (V, 3) world mm
    faces: np.ndarray  # (F, 3)
    normals: np.ndarray  # (V, 3) unit outward vertex normals
    colour: np.ndarray  # (3,) RGB in [0, 1], or (V, 3): one per vertex


def shaded(vertices: np.ndarray, faces: np.ndarray, colour: np.ndarray) -> ShadedMesh:
    """A ShadedMesh with outward area-weighted vertex normals (faces flipped when they point inward)."""
    faces = np.asarray(faces, dtype=np.int64)
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    face_normals = np.cross(b - a, c - a)  # area-weighted
    if np.einsum("ij,ij->i", a, face_normals).sum() < 0:  # make them point outward
        faces, face_normals = faces[:, ::-1], -face_normals
    normals = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(normals, faces[:, i], face_normals)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return ShadedMesh(vertices, faces, normals, np.asarray(colour, dtype=np.float64))



def render(meshes: list[ShadedMesh], forward, up, *, pixels: int = VIEW_PIXELS, supersample: int = SUPERSAMPLE,
           margin: float = 0.04) -> np.ndarray:
    """Orthographic, smooth-shaded RGB image (pixels × pixels × 3, float in [0, 1]) of meshes.

    Looks along `forward` with `up` towards the image's top; the view is fitted to all meshes.
    """
    forward = np.asarray(forward, float) / np.linalg.norm(forward)
    up = np.asarray(up, float)
    up = up - forward * (up @ forward)
    up /= np.linalg.norm(up)
    right = np.cross(forward, up)
    size = pixels * supersample
    every = np.concatenate([m.vertices for m in meshes])
    u, w = every @ right, every @ up
    centre = np.array([(u.min() + u.max()) / 2, (w.min() + w.max()) / 2])
    extent = max(u.max() - u.min(), w.max() - w.min()) * (1 + 2 * margin)
    scale = size / extent
    all_depth = np.concatenate([m.vertices @ forward for m in meshes])
    near, far = float(all_depth.min()), float(all_depth.max())

    zbuffer = np.full(size * size, np.inf)
    fragments = []
    for index, mesh in enumerate(meshes):
        x = (mesh.vertices @ right - centre[0]) * scale + size / 2 - 0.5
        y = (centre[1] - mesh.vertices @ up) * scale + size / 2 - 0.5
        depth = mesh.vertices @ forward
        pix, z, bary, tri = _rasterize(x, y, depth, mesh.faces, size)
        np.minimum.at(zbuffer, pix, z)
        fragments.append((index, pix, z, bary, tri))

    image_normal = np.zeros((size * size, 3))
    image_colour = np.zeros((size * size, 3))
    image_depth = np.full(size * size, np.nan)
    for index, pix, z, bary, tri in fragments:
        win = z <= zbuffer[pix]
        pix, z, bary, tri = pix[win], z[win], bary[win], tri[win]
        mesh = meshes[index]
        corners = mesh.faces[tri]
        normal = np.einsum("ij,ijk->ik", bary, mesh.normals[corners])
        image_normal[pix] = normal
        image_colour[pix] = mesh.colour if mesh.colour.ndim == 1 else np.einsum("ij,ijk->ik", bary, mesh.colour[corners])
        image_depth[pix] = z
    covered = np.isfinite(image_depth)
    rgb = _shade(image_normal[covered], image_colour[covered], image_depth[covered], forward, up, right, near, far)
    background = _background(size)
    out = background.reshape(-1, 3)
    out[covered] = rgb
    image = out.reshape(size, size, 3)
    if supersample > 1:
        image = image.reshape(pixels, supersample, pixels, supersample, 3).mean(axis=(1, 3))
    return np.clip(image, 0.0, 1.0)


def _rasterize(x, y, depth, faces, size):
    """Fragments (pixel index, depth, barycentric weights, triangle) of the front-facing triangles
    covering pixel centres (the meshes are closed, so back faces are never seen)."""
    xs, ys = x[faces], y[faces]
    # with image y pointing down, a front face (outward normal towards the viewer) has signed < 0
    signed = (xs[:, 1] - xs[:, 0]) * (ys[:, 2] - ys[:, 0]) - (xs[:, 2] - xs[:, 0]) * (ys[:, 1] - ys[:, 0])
    lower_x = np.ceil(xs.min(axis=1)).astype(np.int64)
    lower_y = np.ceil(ys.min(axis=1)).astype(np.int64)
    span_x = (np.floor(xs.max(axis=1)) - lower_x).astype(np.int64) + 1
    span_y = (np.floor(ys.max(axis=1)) - lower_y).astype(np.int64) + 1
    visible = ((signed < -1e-12) & (span_x > 0) & (span_y > 0) & (xs.max(axis=1) >= 0) & (ys.max(axis=1) >= 0)
               & (xs.min(axis=1) < size) & (ys.min(axis=1) < size))
    # group triangles by the power of two that bounds their pixel box along each image axis
    class_x = np.ceil(np.log2(np.maximum(span_x, 1))).astype(np.int64)
    class_y = np.ceil(np.log2(np.maximum(span_y, 1))).astype(np.int64)
    out_pix, out_z, out_bary, out_tri = [], [], [], []
    keys = class_x * 64 + class_y
    for key in np.unique(keys[visible]):
        group = np.flatnonzero(visible & (keys == key))
        bx, by = 2 ** int(key // 64), 2 ** int(key % 64)
        offsets = np.stack(np.meshgrid(np.arange(bx), np.arange(by), indexing="ij"), -1).reshape(-1, 2)
        px = lower_x[group, None] + offsets[None, :, 0]
        py = lower_y[group, None] + offsets[None, :, 1]
        x0, x1, x2 = (xs[group, i, None] for i in range(3))
        y0, y1, y2 = (ys[group, i, None] for i in range(3))
        area = signed[group, None]
        b1 = ((px - x0) * (y2 - y0) - (x2 - x0) * (py - y0)) / area
        b2 = ((x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)) / area
        b0 = 1.0 - b1 - b2
        eps = -1e-7
        inside = (b0 >= eps) & (b1 >= eps) & (b2 >= eps) & (px >= 0) & (py >= 0) & (px < size) & (py < size)
        t, k = np.nonzero(inside)
        tri = group[t]
        bary = np.stack([b0[t, k], b1[t, k], b2[t, k]], axis=1)
        z = np.einsum("ij,ij->i", bary, depth[faces[tri]])
        out_pix.append(py[t, k] * size + px[t, k])
        out_z.append(z)
        out_bary.append(bary)
        out_tri.append(tri)
    if not out_pix:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 3)), np.zeros(0, np.int64)
    return np.concatenate(out_pix), np.concatenate(out_z), np.concatenate(out_bary), np.concatenate(out_tri)


def _shade(normal, colour, depth, forward, up, right, near, far):
    normal = normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    facing = normal @ forward > 0  # a back face seen through a gap: light its other side
    normal[facing] *= -1
    view = -forward
    key = -forward + 0.55 * up - 0.45 * right
    key /= np.linalg.norm(key)
    fill = -forward - 0.3 * up + 0.6 * right
    fill /= np.linalg.norm(fill)
    diffuse = 0.72 * np.clip(normal @ key, 0, None) + 0.22 * np.clip(normal @ fill, 0, None)
    half = (key + view) / np.linalg.norm(key + view)
    specular = 0.28 * np.clip(normal @ half, 0, None) ** 40
    cue = 1.0 - 0.35 * (depth - near) / max(far - near, 1e-9)
    rim = 0.10 * (1 - np.abs(normal @ view)) ** 3
    rgb = colour * (0.20 + diffuse[:, None]) * cue[:, None] + (specular + rim)[:, None]
    return np.clip(rgb, 0, 1) ** (1 / 1.15)


def _background(size: int) -> np.ndarray:
    top, bottom = (np.array([int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)]) for c in BACKGROUND)
    t = np.linspace(0, 1, size)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (size, size, 3)).copy()
