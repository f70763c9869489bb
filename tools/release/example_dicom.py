"""Write the bundled example case as a head CT DICOM series, to try `pcc implant SERIES --ct`.

    python -m tools.release.example_dicom OUT_FOLDER
    pcc implant OUT_FOLDER --ct -o implant.nrrd --stl implant.stl --preview implant.png --report run.json

The example's defective skull (SkullFix case 005, CC BY-NC-SA 4.0, pcc/examples/ATTRIBUTION.md) becomes
a CT in Hounsfield units on the example's own grid (0.43 × 0.43 mm pixels, oblique slices every
0.66 mm, LPS): bone 1200 HU, a 3-voxel layer of scalp (40 HU) over the bone and over the removed
bone flap (soft tissue in its place, as in a patient), air −1000 HU. One file per slice, CT Image
Storage, explicit little endian, stored values = HU + 1024 with RescaleIntercept −1024, synthetic
patient name and identifiers. The removed bone (the example's ground-truth implant) scores the result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def ct_hu(skull: "object", removed: np.ndarray, *, noise_hu: float = 0.0, table: bool = False, seed: int = 0) -> np.ndarray:
    """A head CT in HU (x, y, z) int16 on the skull's grid: bone 1200 HU, a 3-voxel layer of scalp (40 HU)
    over the bone and over the removed bone (soft tissue in its place, as in a patient), air −1000 HU;
    optionally Gaussian noise (noise_hu, standard deviation) and a head-holder plate (300 HU, 8 mm thick,
    15 mm behind the head: beyond its last row along the array's y axis when that axis points posterior
    (+y in LPS), as in SkullFix volumes, else before its first row)."""
    from scipy import ndimage

    bone = skull.mask()
    scalp = ndimage.binary_dilation(bone | removed, iterations=3) & ~bone
    hu = np.full(bone.shape, -1000.0, np.float32)
    hu[scalp] = 40
    hu[bone] = 1200
    if table:
        rows = np.flatnonzero((bone | scalp).any(axis=(0, 2)))
        spacing_y = float(skull.spacing[1])
        back = rows[-1] if skull.directions[1, 1] > 0 else rows[0]
        sign = 1 if skull.directions[1, 1] > 0 else -1
        start = back + sign * int(round(15 / spacing_y))
        plate = sorted([start, start + sign * int(round(8 / spacing_y))])
        plate = [max(0, plate[0]), min(bone.shape[1], plate[1])]
        hu[:, plate[0]:plate[1], :] = 300
    if noise_hu > 0:
        hu += np.random.default_rng(seed).normal(0.0, noise_hu, hu.shape).astype(np.float32)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def example_ct_hu() -> tuple[np.ndarray, "object", np.ndarray]:
    """(HU array (x, y, z) int16, the example's defective skull Volume, the removed bone as a bool mask)."""
    from pcc.examples import EXAMPLE_DEFECTIVE, EXAMPLE_IMPLANT
    from pcc.io import read_volume

    skull, implant = read_volume(EXAMPLE_DEFECTIVE), read_volume(EXAMPLE_IMPLANT)
    return ct_hu(skull, implant.mask()), skull, implant.mask()


def write_series(folder: Path, hu: np.ndarray, directions: np.ndarray, origin: np.ndarray, *, series_number: int = 2,
                 description: str = "head", seed: int = 0) -> str:
    """Write an (x, y, z) HU volume on an LPS grid (directions: rows = voxel steps in mm) as one DICOM file
    per z slice, in shuffled order; returns the SeriesInstanceUID."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    row_step, column_step = directions[0], directions[1]  # along a row (x, columns) and down a column (y, rows)
    orientation = [*(row_step / np.linalg.norm(row_step)), *(column_step / np.linalg.norm(column_step))]
    series_uid, study_uid = generate_uid(), generate_uid()
    stored = (hu.astype(np.int32) + 1024).astype(np.int16)
    for k in np.random.default_rng(seed).permutation(hu.shape[2]):
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        path = folder / f"IM{k:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = "Example^Skull005", "PCC-EXAMPLE-005"
        ds.Modality = "CT"
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
        ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = series_number, description, int(k) + 1
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in origin + k * directions[2]]
        ds.PixelSpacing = [f"{np.linalg.norm(column_step):.6f}", f"{np.linalg.norm(row_step):.6f}"]
        ds.SliceThickness = f"{np.linalg.norm(directions[2]):.6f}"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T, dtype="<i2").tobytes()  # (rows, columns) = (y, x)
        ds.save_as(path, enforce_file_format=True)
    return str(series_uid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder for the series (created)")
    args = parser.parse_args()
    hu, skull, _ = example_ct_hu()
    uid = write_series(Path(args.out), hu, skull.directions, skull.origin, description="example 005 as CT")
    print(f"wrote {hu.shape[2]} slices of series {uid} to {args.out}")


if __name__ == "__main__":
    main()
