"""Speed of the whole `pcc implant` command against the cost of reading and writing the volume.

    python -m tools.benchmarks.bench_speed [CASE.nrrd ...] [--device cpu] [--repeats 2] [--folder DIR] [--out docs/results/speed/bench_speed_cpu.txt]

For each case (default: the bundled example case), in one run of this script:
  floor   reading the input with pcc.io.read_volume and writing a same-size volume with
          pcc.io.write_volume (gzip NRRD, as pcc writes its implants), timed in a fresh process with the
          pcc command's memory settings (pcc.cli.memory_settings);
  plain   `pcc implant CASE -o implant.nrrd` as a fresh process (interpreter start-up, imports, model
          load, design, write: what a user waits for);
  full    the same with `--stl implant.stl --report run.json`;
  conf    the plain command with `--confidence confidence.nrrd` (the per-voxel confidence map);
each repeated --repeats times (the fastest run counts: the others were disturbed by the machine; the
floor is measured before and after each round's commands). The commands run `python -m pcc.cli` from the
working directory (its pcc: run the script from another checkout's root to time that checkout against
this floor); the floor always uses this script's checkout.
It prints each command's seconds and ratio to the floor, the peak resident memory of each command's
process, and where the full command's time went (start-up = wall time − the report's case total; the
stages from the report's timings). --folder DIR also runs `pcc implant DIR -o OUT --report` once and
prints the seconds per case of folder mode. Ratios, not seconds, compare machines: a busy machine
slows the floor and the command alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_command(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident GiB) of one child process running `python -m pcc.cli ARGS`."""
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty child cannot block on a full pipe
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "pcc.cli", *args], stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.seek(0)
            raise SystemExit(f"pcc {' '.join(args)} failed ({code}): {log.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def io_floor(case: Path, out: Path) -> float:
    """Seconds to read the case and write a same-size uint8 volume the way pcc writes implants, timed in a
    fresh child process with the pcc command's memory settings (a fresh process's memory, as the command
    has; interpreter start-up and imports, pynrrd's included, not counted). The child uses this script's
    checkout of pcc."""
    probe = ("import sys, time; from pcc.cli import memory_settings; memory_settings(); "
             "import nrrd; from pcc.io import read_volume, write_volume; start = time.perf_counter(); "
             "volume = read_volume(sys.argv[1]); write_volume(sys.argv[2], volume.with_array(volume.mask().astype('uint8'))); "
             "print(time.perf_counter() - start)")
    result = subprocess.run([sys.executable, "-c", probe, str(case), str(out)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the I/O floor's child process failed ({result.returncode}): {result.stderr[-2000:]}")
    return float(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help="defective skull volumes (default: the bundled example case)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--folder", help="also time folder mode on this folder of defective skulls")
    parser.add_argument("--out", help="also write the printed table to this file")
    args = parser.parse_args()

    from pcc.examples import EXAMPLE_DEFECTIVE

    cases = [Path(c) for c in args.cases] or [EXAMPLE_DEFECTIVE]
    lines = [f"pcc implant speed, device {args.device}, {os.cpu_count()} CPU cores, best of {args.repeats}; "
             f"python -m tools.benchmarks.bench_speed {' '.join(sys.argv[1:])}",
             f"{'case':<24} {'floor s':>8} {'plain s':>8} {'ratio':>6} {'full s':>8} {'ratio':>6} {'conf s':>8} "
             f"{'peak GiB':>8} {'start-up s':>10}  full command's stages (s)"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for case in cases:
            floors, plains, fulls, confs, peaks, reports = [], [], [], [], [], []
            for _ in range(args.repeats):
                floors.append(io_floor(case, work / "floor.nrrd"))
                wall, peak = run_command(["implant", str(case), "-o", str(work / "plain.nrrd"), "--device", args.device,
                                          "--overwrite"])
                plains.append(wall)
                peaks.append(peak)
                wall, peak = run_command(["implant", str(case), "-o", str(work / "conf.nrrd"), "--device", args.device,
                                          "--confidence", str(work / "confidence.nrrd"), "--overwrite"])
                confs.append(wall)
                peaks.append(peak)
                wall, peak = run_command(["implant", str(case), "-o", str(work / "full.nrrd"), "--stl", str(work / "full.stl"),
                                          "--report", str(work / "run.json"), "--device", args.device, "--overwrite"])
                fulls.append(wall)
                peaks.append(peak)
                reports.append((wall, json.loads((work / "run.json").read_text())))
                floors.append(io_floor(case, work / "floor.nrrd"))  # twice per round: the floor is the fastest
            floor, plain, full, conf = min(floors), min(plains), min(fulls), min(confs)
            wall, report = min(reports, key=lambda item: item[0])
            timings = report["cases"][0]["timings_s"]
            startup = wall - timings["total"]
            stages = " ".join(f"{k} {v:.2f}" for k, v in timings.items() if k != "total" and not k.startswith("design."))
            inner = " ".join(f"{k[7:]} {v:.2f}" for k, v in timings.items() if k.startswith("design."))
            lines.append(f"{case.name:<24} {floor:8.2f} {plain:8.2f} {plain / floor:6.1f} {full:8.2f} {full / floor:6.1f} {conf:8.2f} "
                         f"{max(peaks):8.2f} {startup:10.2f}  {stages} (design: {inner})")
            print(lines[-1], flush=True)
        if args.folder:
            start = time.perf_counter()
            run_command(["implant", args.folder, "-o", str(work / "folder"), "--report", str(work / "folder.json"),
                         "--device", args.device])
            wall = time.perf_counter() - start
            summary = json.loads((work / "folder.json").read_text())["summary"]
            lines.append(f"folder mode, {args.folder}: {summary['done']} cases in {wall:.1f} s (whole command), "
                         f"{summary['mean_time_s']:.2f} s per case (the report's mean case time)")
            print(lines[-1], flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
