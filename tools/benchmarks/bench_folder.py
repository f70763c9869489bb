"""Throughput of `pcc implant` in folder mode: wall seconds per case, start-up and model load included.

    python -m tools.benchmarks.bench_folder [--cases 8] [--workers 1,4] [--device auto] [--model PATH] [--folder DIR]

Without --folder the bundled example case is copied --cases times into a temporary folder. Each
--workers value runs the whole command once (a fresh output folder, so nothing is skipped).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pcc.pipeline import folder_inputs
from tools import REPO

EXAMPLE = REPO / "pcc" / "examples" / "defective_skull_005.nrrd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=8, help="copies of the example case (without --folder)")
    parser.add_argument("--folder", help="a folder of defective skulls instead of the example's copies")
    parser.add_argument("--workers", default="1,4", help="comma-separated --workers values to time")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp) / "in"
        if not args.folder:
            folder.mkdir()
            for index in range(args.cases):
                shutil.copy(EXAMPLE, folder / f"case_{index:03d}.nrrd")
        count = len(folder_inputs(folder))
        for workers in (int(w) for w in args.workers.split(",")):
            command = [sys.executable, "-m", "pcc.cli", "implant", str(folder), "-o", str(Path(tmp) / f"out_{workers}"),
                       "--device", args.device, "--workers", str(workers)] + (["--model", args.model] if args.model else [])
            start = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            wall = time.perf_counter() - start
            if result.returncode != 0:
                sys.exit(f"pcc implant failed (--workers {workers}):\n{result.stderr[-2000:]}")
            summary = [line for line in result.stderr.splitlines() if line.startswith("done:")]
            print(f"--workers {workers}: {count} cases in {wall:.1f} s wall = {wall / count:.2f} s per case "
                  f"({summary[-1] if summary else ''})", flush=True)


if __name__ == "__main__":
    main()
