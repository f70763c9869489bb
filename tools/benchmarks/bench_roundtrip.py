"""Round-trip benchmark: implant volume → point cloud → volume on the same grid.

For each SkullFix training implant and each point count: DSC and HD95 (mm) against the original,
and the time of each direction (pcc.geometry.surface.volume_to_points, pcc.geometry.voxelize.points_to_volume; file
reading is not timed). Also times a full 512×512×Z skull in both directions.

Writes a table to stdout, a CSV and a plot (DSC and HD95 against point count, times).

    python -m tools.benchmarks.bench_roundtrip                       # all 70 implants, 1k/4k/16k/64k
    python -m tools.benchmarks.bench_roundtrip --cases 10 --counts 16384
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

from pcc.shared_data import data_root
from tools import REPO


def hd95_mm(pred: np.ndarray, gt: np.ndarray, spacing: np.ndarray) -> float:
    """95th percentile of both directed surface distances pooled (pcc.challenge.metrics when present)."""
    try:
        from pcc.challenge.metrics import hausdorff

        return float(hausdorff(pred, gt, spacing)[1])
    except ImportError:  # a small local version: surfaces = mask XOR its 6-connected erosion
        from scipy import ndimage

        def surface(mask):
            return mask ^ ndimage.binary_erosion(mask, border_value=0)

        sp, sg = surface(pred), surface(gt)
        to_g = ndimage.distance_transform_edt(~sg, sampling=spacing)[sp]
        to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)[sg]
        return float(np.percentile(np.concatenate([to_g, to_p]), 95))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def crop(*masks: np.ndarray, margin: int = 3) -> tuple[slice, ...]:
    """The bounding box of all masks plus a margin (metrics on the box equal those on the volume)."""
    union = np.logical_or.reduce(masks)
    box = []
    for axis in range(3):
        nonzero = np.flatnonzero(union.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(max(nonzero[0] - margin, 0), nonzero[-1] + 1 + margin))
    return tuple(box)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=data_root() / "skullfix",
                        help="SkullFix folder holding training_set/ (default ../shared/data/skullfix)")
    parser.add_argument("--cases", type=int, default=None, help="use only the first N implants")
    parser.add_argument("--counts", default="1024,4096,16384,65536", help="comma-separated point counts")
    parser.add_argument("--subset-counts", default="", help="counts run on only --subset cases (the rest on all)")
    parser.add_argument("--subset", type=int, default=10, help="cases for --subset-counts")
    parser.add_argument("--skulls", type=int, default=3, help="full skulls to time (0: none)")
    parser.add_argument("--skull-points", type=int, default=300_000, help="points per full skull")
    parser.add_argument("--csv", type=Path, default=REPO / "docs" / "images" / "roundtrip.csv")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "images" / "roundtrip.png")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from an existing --csv")
    args = parser.parse_args()
    if args.replot:
        with open(args.csv) as handle:
            rows = [dict(r, points=int(r["points"]), **{k: float(r[k]) for k in ("dsc", "hd95_mm", "to_points_s", "to_volume_s")})
                    for r in csv.DictReader(handle)]
        plot(summarise(rows), [r for r in rows if r["kind"] == "skull"], args.plot)
        return 0

    from pcc.geometry.surface import volume_to_points
    from pcc.geometry.voxelize import points_to_volume
    from pcc.io import read_volume

    implants = sorted((args.data / "training_set" / "implant").glob("*.nrrd"))
    if not implants:
        print(f"no implants under {args.data / 'training_set' / 'implant'}: pass --data", file=sys.stderr)
        return 2
    implants = implants[: args.cases] if args.cases else implants
    counts = [int(c) for c in args.counts.split(",") if c]
    subset_counts = {int(c) for c in args.subset_counts.split(",") if c}
    counts = sorted(set(counts) | subset_counts)

    rows = []
    print(f"{'case':>6} {'points':>7} {'DSC':>7} {'HD95mm':>7} {'to-points s':>11} {'to-volume s':>11}", flush=True)
    for number, path in enumerate(implants):
        volume = read_volume(path)
        gt = volume.mask()
        for n in counts:
            if n in subset_counts and number >= args.subset:
                continue
            start = time.perf_counter()
            cloud = volume_to_points(volume, n)
            middle = time.perf_counter()
            pred = points_to_volume(cloud, volume).mask()
            end = time.perf_counter()
            box = crop(gt, pred)
            row = dict(kind="implant", case=path.stem, points=n, dsc=dice(pred[box], gt[box]),
                       hd95_mm=hd95_mm(pred[box], gt[box], volume.spacing),
                       to_points_s=middle - start, to_volume_s=end - middle)
            rows.append(row)
            print(f"{row['case']:>6} {n:>7} {row['dsc']:7.4f} {row['hd95_mm']:7.3f} "
                  f"{row['to_points_s']:11.2f} {row['to_volume_s']:11.2f}", flush=True)

    skulls = sorted((args.data / "training_set" / "complete_skull").glob("*.nrrd"))[: args.skulls]
    for path in skulls:
        volume = read_volume(path)
        start = time.perf_counter()
        cloud = volume_to_points(volume, args.skull_points)
        middle = time.perf_counter()
        pred = points_to_volume(cloud, volume).mask()
        end = time.perf_counter()
        gt = volume.mask()
        row = dict(kind="skull", case=path.stem, points=args.skull_points, dsc=dice(pred, gt), hd95_mm=float("nan"),
                   to_points_s=middle - start, to_volume_s=end - middle)
        rows.append(row)
        print(f"skull {row['case']} {volume.shape}: {args.skull_points} points, DSC {row['dsc']:.4f}, "
              f"to-points {row['to_points_s']:.2f} s, to-volume {row['to_volume_s']:.2f} s", flush=True)

    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    summary = summarise(rows)
    print(f"\nmachine: {os.cpu_count()} CPU cores; times exclude file reading")
    print(f"{'points':>7} {'cases':>5} {'DSC mean':>9} {'DSC min':>8} {'HD95 mean':>10} {'HD95 max':>9} "
          f"{'to-points s':>11} {'to-volume s':>11}")
    for n, s in summary.items():
        print(f"{n:>7} {s['cases']:>5} {s['dsc']:9.4f} {s['dsc_min']:8.4f} {s['hd95']:10.3f} {s['hd95_max']:9.3f} "
              f"{s['to_points_s']:11.2f} {s['to_volume_s']:11.2f}")
    skull_rows = [r for r in rows if r["kind"] == "skull"]
    if skull_rows:
        print(f"full skulls ({len(skull_rows)}, {args.skull_points} points): DSC {np.mean([r['dsc'] for r in skull_rows]):.4f}, "
              f"to-points {np.mean([r['to_points_s'] for r in skull_rows]):.2f} s "
              f"(max {max(r['to_points_s'] for r in skull_rows):.2f}), "
              f"to-volume {np.mean([r['to_volume_s'] for r in skull_rows]):.2f} s "
              f"(max {max(r['to_volume_s'] for r in skull_rows):.2f})")
    plot(summary, skull_rows, args.plot)
    print(f"wrote {args.csv} and {args.plot}")
    return 0


def summarise(rows: list[dict]) -> dict[int, dict]:
    summary = {}
    for n in sorted({r["points"] for r in rows if r["kind"] == "implant"}):
        chosen = [r for r in rows if r["kind"] == "implant" and r["points"] == n]
        column = {key: np.array([r[key] for r in chosen]) for key in ("dsc", "hd95_mm", "to_points_s", "to_volume_s")}
        summary[n] = dict(cases=len(chosen), dsc=column["dsc"].mean(), dsc_min=column["dsc"].min(),
                          dsc_std=column["dsc"].std(), hd95=column["hd95_mm"].mean(), hd95_max=column["hd95_mm"].max(),
                          to_points_s=column["to_points_s"].mean(), to_volume_s=column["to_volume_s"].mean())
    return summary


def plot(summary: dict[int, dict], skull_rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(list(summary))
    fig, (ax_dsc, ax_hd, ax_time) = plt.subplots(1, 3, figsize=(13, 3.8))
    dsc = np.array([summary[n]["dsc"] for n in counts])
    ax_dsc.errorbar(counts, dsc, yerr=[summary[n]["dsc_std"] for n in counts], marker="o", capsize=3, label="mean ± sd")
    ax_dsc.plot(counts, [summary[n]["dsc_min"] for n in counts], "v--", color="grey", label="worst case")
    ax_dsc.axhline(0.97, color="red", lw=0.8, ls=":", label="target 0.97")
    ax_dsc.set(xscale="log", xlabel="points per implant", ylabel="round-trip DSC", title="DSC")
    ax_hd.plot(counts, [summary[n]["hd95"] for n in counts], "o-", label="mean")
    ax_hd.plot(counts, [summary[n]["hd95_max"] for n in counts], "v--", color="grey", label="worst case")
    ax_hd.axhline(0.5, color="red", lw=0.8, ls=":", label="target 0.5 mm")
    ax_hd.set(xscale="log", xlabel="points per implant", ylabel="HD95 (mm)", title="HD95")
    ax_time.plot(counts, [summary[n]["to_points_s"] for n in counts], "o-", label="implant → points")
    ax_time.plot(counts, [summary[n]["to_volume_s"] for n in counts], "s-", label="points → implant")
    if skull_rows:
        n = skull_rows[0]["points"]
        ax_time.plot([n], [np.mean([r["to_points_s"] for r in skull_rows])], "o", color="C0", mfc="none", ms=9,
                     label="full skull → points")
        ax_time.plot([n], [np.mean([r["to_volume_s"] for r in skull_rows])], "s", color="C1", mfc="none", ms=9,
                     label="points → full skull")
    ax_time.set(xscale="log", xlabel="points", ylabel="seconds (2-core CPU)", title="time per direction")
    for ax in (ax_dsc, ax_hd, ax_time):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    cases = ", ".join(f"{summary[n]['cases']} at {n}" for n in counts)
    fig.suptitle(f"SkullFix implants, volume → cloud → volume (implants: {cases} points)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
