"""Reading and writing volumes (NRRD, NIfTI), point clouds (.ply, .npz, .xyz) and meshes.

Every writer writes to a temporary file beside the target and renames it, so an interrupted run
never leaves half a file. Readers turn every malformed file into an InputError (exit status 2).
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pcc.errors import InputError
from pcc.geometry.cloud import PointCloud
from pcc.volume import Volume

VOLUME_SUFFIXES = (".nrrd", ".nii", ".nii.gz")
CLOUD_SUFFIXES = (".ply", ".npz", ".xyz")
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def volume_suffix(path: str | os.PathLike) -> str:
    """The volume format suffix of path ('.nrrd', '.nii' or '.nii.gz'), or '' when it is none."""
    name = str(path).lower()
    return next((s for s in (".nii.gz", ".nrrd", ".nii") if name.endswith(s)), "")


def is_volume_path(path: str | os.PathLike) -> bool:
    return volume_suffix(path) != ""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); rename it onto `path` on success.

    The file gets the mode a plain `open` would give it (0666 less the umask: 0644 under the usual 022),
    not the temporary file's private 0600, so the other members of a group can read what pcc wrote.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(f"output folder {target.parent} does not exist: create it or choose another path")
    if not os.access(target.parent, os.W_OK):
        raise InputError(f"output folder {target.parent} is not writable: choose another output path")
    suffix = volume_suffix(target) or target.suffix
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + suffix, dir=target.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def remove_partial(path: str | os.PathLike, *, keep_existing: bool = False) -> None:
    """Remove what an interrupted writer of `path` left: atomic_path's temporary files beside it, and the
    file itself unless keep_existing (it was there before the interrupted work began)."""
    target = Path(path)
    if target.parent.is_dir():
        for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp*"):
            leftover.unlink(missing_ok=True)
    if not keep_existing:
        target.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask (read from /proc when it can be, which leaves it untouched; else set and restored)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a 3-D NRRD or NIfTI volume with its geometry (world mm, LPS for NIfTI).

    Raises InputError for a missing, unreadable, corrupt or non-3-D file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file: give the path of a .nrrd or .nii(.gz) volume")
    suffix = volume_suffix(path)
    if suffix == ".nrrd":
        volume = _read_nrrd(path)
    elif suffix in (".nii", ".nii.gz"):
        volume = _read_nifti(path)
    else:
        raise InputError(f"{path}: unknown volume format; use .nrrd, .nii or .nii.gz")
    if not np.all(np.isfinite(volume.directions)) or not np.all(np.isfinite(volume.origin)):
        raise InputError(f"{path}: the header's space directions or origin are not finite numbers; fix the header")
    if abs(np.linalg.det(volume.directions)) < 1e-12:
        raise InputError(f"{path}: the header's space directions are degenerate (zero voxel volume); fix the header")
    return volume


def _read_nrrd(path: Path) -> Volume:
    import nrrd

    try:
        array, header = nrrd.read(str(path))
    except Exception as error:  # pynrrd raises many types for corrupt files
        if "does not equal the product of all the dimensions" in str(error):
            raise InputError(f"{path}: the header's sizes disagree with the amount of data (truncated file or wrong "
                             f"header); re-export the volume") from None
        raise InputError(f"{path} is not a readable NRRD file ({_short(error)}); check the file or re-export it") from None
    if array.ndim != 3:
        raise InputError(f"{path} holds {array.ndim}-D data of shape {array.shape}; pcc needs a 3-D volume")
    if min(array.shape) == 0:
        raise InputError(f"{path} holds no voxels (shape {array.shape}); give a non-empty 3-D volume")
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path} holds data of type {array.dtype}; pcc needs integer or float voxels")
    directions = header.get("space directions")
    if directions is not None:
        directions = np.asarray(directions, dtype=np.float64)
        if directions.shape != (3, 3):
            raise InputError(f"{path}: 'space directions' is not three 3-vectors; fix the header")
    elif "spacings" in header:
        spacings = np.asarray(header["spacings"], dtype=np.float64)
        if spacings.shape != (3,):
            raise InputError(f"{path}: 'spacings' does not give three voxel sizes; fix the header")
        directions = np.diag(spacings)
    else:
        directions = np.eye(3)
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    if origin.shape != (3,):
        raise InputError(f"{path}: 'space origin' is not a 3-vector; fix the header")
    space = str(header.get("space", "left-posterior-superior"))
    return Volume(array, directions, origin, space, dict(header))


def _read_nifti(path: Path) -> Volume:
    import nibabel

    try:
        image = nibabel.load(str(path))
        array = np.asanyarray(image.dataobj)
    except Exception as error:
        raise InputError(f"{path} is not a readable NIfTI file ({_short(error)}); check the file or re-export it") from None
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputError(f"{path} holds {array.ndim}-D data of shape {array.shape}; pcc needs a 3-D volume")
    affine = _LPS_FROM_RAS @ image.affine
    header = {"nifti_header": image.header.copy()}
    return Volume(np.asarray(array), affine[:3, :3].T.copy(), affine[:3, 3].copy(), "left-posterior-superior", header)


def write_volume(path: str | os.PathLike, volume: Volume, *, binary: bool = True) -> None:
    """Write a volume as uint8 (gzip NRRD or NIfTI), keeping the input's exact geometry: a mask as 0/1
    (binary=True, nonzero → 1), or a uint8 array's values as they are (binary=False, e.g. percent maps)."""
    # Fortran order is NRRD's (x fastest): pynrrd then writes the bytes without a transposing copy.
    if binary:
        data = np.asfortranarray((np.asarray(volume.array) != 0).view(np.uint8))
    elif volume.array.dtype == np.uint8:
        data = np.asfortranarray(volume.array)
    else:
        raise ValueError(f"write_volume(binary=False) writes uint8 arrays, got {volume.array.dtype}")
    suffix = volume_suffix(path)
    if suffix not in VOLUME_SUFFIXES:
        raise InputError(f"{path}: output must end in .nrrd, .nii or .nii.gz")
    with atomic_path(path) as tmp:
        if suffix == ".nrrd":
            _write_nrrd(tmp, data, volume)
        else:
            _write_nifti(tmp, data, volume)


def _write_nrrd(path: Path, data: np.ndarray, volume: Volume) -> None:
    import nrrd

    header = {
        "type": "uint8",
        "dimension": 3,
        "space": volume.space,
        "sizes": np.asarray(data.shape),
        "space directions": np.asarray(volume.directions, dtype=np.float64),
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
        "space origin": np.asarray(volume.origin, dtype=np.float64),
    }
    nrrd.write(str(path), data, header, compression_level=1)


def _write_nifti(path: Path, data: np.ndarray, volume: Volume) -> None:
    import nibabel

    affine = np.linalg.inv(_LPS_FROM_RAS) @ volume.affine
    header = volume.header.get("nifti_header")
    image = nibabel.Nifti1Image(data, affine, header=header.copy() if header is not None else None)
    image.set_data_dtype(np.uint8)
    image.header.set_slope_inter(1, 0)
    nibabel.save(image, str(path))


def read_cloud(path: str | os.PathLike) -> PointCloud:
    """Read a point cloud (world mm) from .ply, .npz (arrays 'points', optional 'normals') or .xyz."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist: give the path of a .ply, .npz or .xyz point cloud")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path) as data:
                points = np.asarray(data["points"], dtype=np.float64)
                normals = np.asarray(data["normals"], dtype=np.float64) if "normals" in data else None
        elif suffix == ".xyz":
            table = np.loadtxt(path, dtype=np.float64, ndmin=2)
            points = table[:, :3]
            normals = table[:, 3:6] if table.shape[1] >= 6 else None
        elif suffix == ".ply":
            import open3d

            cloud = open3d.io.read_point_cloud(str(path))
            points = np.asarray(cloud.points, dtype=np.float64)
            normals = np.asarray(cloud.normals, dtype=np.float64) if cloud.has_normals() else None
        else:
            raise InputError(f"{path}: unknown point-cloud format; use .ply, .npz or .xyz")
        cloud = PointCloud(points, normals)
    except InputError:
        raise
    except Exception as error:
        raise InputError(f"{path} is not a readable point cloud ({_short(error)})") from None
    if len(cloud) == 0:
        raise InputError(f"{path} holds no points")
    return cloud


def write_cloud(path: str | os.PathLike, cloud: PointCloud) -> None:
    """Write a point cloud (world mm) as .ply (open3d), .npz or .xyz (x y z [nx ny nz] per line)."""
    suffix = Path(path).suffix.lower()
    if suffix not in CLOUD_SUFFIXES:
        raise InputError(f"{path}: point-cloud output must end in .ply, .npz or .xyz")
    with atomic_path(path) as tmp:
        if suffix == ".npz":
            arrays = {"points": cloud.points}
            if cloud.normals is not None:
                arrays["normals"] = cloud.normals
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        elif suffix == ".xyz":
            table = cloud.points if cloud.normals is None else np.hstack([cloud.points, cloud.normals])
            np.savetxt(tmp, table, fmt="%.6f")
        else:
            import open3d

            o3d_cloud = open3d.geometry.PointCloud(open3d.utility.Vector3dVector(cloud.points))
            if cloud.normals is not None:
                o3d_cloud.normals = open3d.utility.Vector3dVector(cloud.normals)
            if not open3d.io.write_point_cloud(str(tmp), o3d_cloud):
                raise OSError(f"open3d could not write {path}")


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


def write_mesh(path: str | os.PathLike, mesh, *, space: str = "left-posterior-superior") -> None:
    """Write a pcc.geometry.surface.Mesh (world mm) as binary STL (space named in its header) or PLY."""
    import trimesh

    suffix = Path(path).suffix.lower()
    if suffix not in (".stl", ".ply"):
        raise InputError(f"{path}: mesh output must end in .stl or .ply")
    result = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    with atomic_path(path) as tmp:
        if suffix == ".stl":
            data = trimesh.exchange.stl.export_stl(result)
            title = f"pcc mesh, world mm, space {space}".encode("ascii")[:80].ljust(80, b" ")
            tmp.write_bytes(title + data[80:])
        else:
            result.export(str(tmp), file_type="ply")
