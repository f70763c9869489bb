"""The release chain: the shipped weights fine-tuned by a chain of training runs, each short enough for one
session on a 2-core CPU (issue 30), rerunnable and resumable by anyone.

    python -m tools.release.train_release --root ../shared/data/skullfix/training_set
    python -m tools.release.train_release --dry-run          # the commands, nothing run

Each step is a config under configs/release/ (stepN_*.yaml, in order), composed after the base
configs/skullfix.yaml and started from the previous step's weights (the first from the shipped
pcc/weights/skullfix.pt). For each step the script
  1. trains (`pcc train fit`; a step whose last.ckpt exists but did not reach trainer.max_steps is resumed
     from it, its earlier log kept as metrics_before_step_N.csv beside metrics.csv, and its training minutes
     counted on; a finished one is skipped),
  2. scores the checkpoint on the development split (tools.benchmarks.bench_implant, and
     tools.benchmarks.bench_robustness --parts varied) into runs/release/STEP/,
  3. exports it (tools.release.export_weights, its metadata nesting the previous step's) as
     runs/release/STEP/weights.pt, and writes runs/release/STEP/step.json: command, config, commit, machine,
     minutes, pairs seen, figures.
A step with weights.pt is done. Whether the last step's weights replace pcc/weights/skullfix.pt is a
decision made on its figures (docs/experiments.md), by copying the file and its .json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from pcc.shared_data import skullfix_training_set
from tools import REPO

BASE_CONFIG = REPO / "configs" / "skullfix.yaml"
CHAIN = REPO / "configs" / "release"
SHIPPED = REPO / "pcc" / "weights" / "skullfix.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(skullfix_training_set()), help="SkullFix training_set folder")
    parser.add_argument("--out", default=str(REPO / "runs" / "release"), help="folder for each step's scores and weights")
    parser.add_argument("--start", default=str(SHIPPED), help="weights the first step starts from")
    parser.add_argument("--dry-run", action="store_true", help="print each step's commands and state; run nothing")
    args = parser.parse_args()
    steps = sorted(CHAIN.glob("step*.yaml"))
    if not steps:
        print(f"no step configs in {_shown(CHAIN)}/: the shipped weights {_shown(SHIPPED)} are where the chain ends; "
              "steps that were tried and not adopted are under configs/experiments/ (docs/experiments.md)")
        return
    previous = Path(args.start)
    for config in steps:
        previous = run_step(config, previous, root=Path(args.root), out=Path(args.out) / config.stem, dry_run=args.dry_run)
    print(f"chain done: {previous}")


def step_settings(config: Path) -> tuple[int, int, str]:
    """(trainer.max_steps, data.batch_size, logger name) of a step: its config over the base's."""
    base, step = (yaml.safe_load(path.read_text()) for path in (BASE_CONFIG, config))
    max_steps = step.get("trainer", {}).get("max_steps", base["trainer"]["max_steps"])
    batch = step.get("data", {}).get("batch_size", base["data"]["batch_size"])
    logger = step.get("trainer", {}).get("logger", base["trainer"]["logger"])
    return int(max_steps), int(batch), logger["init_args"]["name"]


def run_step(config: Path, start: Path, *, root: Path, out: Path, dry_run: bool) -> Path:
    """Train, score and export one step (each part skipped when its output exists); returns its weights."""
    weights = out / "weights.pt"
    max_steps, batch, name = step_settings(config)
    checkpoint = REPO / "runs" / name / "version_0" / "checkpoints" / "last.ckpt"
    train = ["pcc", "train", "fit", "--config", _shown(BASE_CONFIG), "--config", _shown(config),
             "--model.init_weights", _shown(start), "--data.root", _shown(root), "--trainer.logger.init_args.version", "0",
             "--trainer.enable_progress_bar", "false"]
    reached = _global_step(checkpoint)
    print(f"{config.stem}: {'done' if weights.is_file() else f'{reached} of {max_steps} steps trained'}", flush=True)
    if weights.is_file():
        return weights
    if reached < max_steps:
        if reached:
            train += ["--ckpt_path", str(checkpoint)]
        print("  " + shlex.join(train), flush=True)
        if dry_run:
            return weights
        out.mkdir(parents=True, exist_ok=True)
        if reached:
            _keep_log(checkpoint.parent.parent / "metrics.csv", reached)
        _train(train, out)
    elif dry_run:
        return weights
    minutes = _earlier_minutes(out)
    figures = {}
    for benchmark, extra in (("bench_implant", []), ("bench_robustness", ["--parts", "varied"])):
        table = out / f"{benchmark}.csv"
        if not table.is_file():
            command = [sys.executable, "-m", f"tools.benchmarks.{benchmark}", "--model", str(checkpoint), "--root", str(root),
                       "--csv", str(table), *extra]
            print("  " + shlex.join(command), flush=True)
            subprocess.run(command, cwd=REPO, check=True)
        figures[benchmark] = _means(table)
    command_text = shlex.join(train[:train.index("--trainer.enable_progress_bar")])
    export = [sys.executable, "-m", "tools.release.export_weights", str(checkpoint), "--out", str(weights),
              "--command", command_text, "--machine", machine(), "--train-minutes", f"{minutes:.1f}",
              "--validation", str(out / "bench_implant.csv"), "--base", str(start),
              "--data", f"SkullFix training_set ({root.name}), the configs' split; development cases never trained on"]
    subprocess.run(export, cwd=REPO, check=True)
    record = {"step": config.stem, "config": _shown(config), "command": command_text,
              "commit": _commit(), "machine": machine(), "training_minutes": round(minutes, 1),
              "optimizer_steps": max_steps, "pairs_seen": max_steps * batch, "started_from": _shown(start),
              "development": figures}
    (out / "step.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"  {config.stem}: {json.dumps(figures)}", flush=True)
    return weights


def _train(train: list[str], out: Path) -> None:
    """Run the step's `pcc train fit` with this interpreter's pcc (a `pcc` on PATH may be another environment's, or
    missing), keeping out/train_minutes.txt (the step's training minutes, earlier runs of it included) up to date each
    minute, so that a run stopped part way (a session's end) still counts its minutes when the step is resumed."""
    earlier, started = _earlier_minutes(out), time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "pcc.cli", *train[1:]], cwd=REPO)
    while process.returncode is None:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        (out / "train_minutes.txt").write_text(f"{earlier + (time.perf_counter() - started) / 60:.1f}\n")
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, train)


def _keep_log(log: Path, reached: int) -> None:
    """Rename a resumed step's metrics.csv to metrics_before_step_N[_K].csv: Lightning's CSV logger deletes the log
    of the run it resumes."""
    if not log.is_file():
        return
    kept, count = log.with_name(f"metrics_before_step_{reached}.csv"), 1
    while kept.exists():  # resumed at this step before: keep every log
        count += 1
        kept = log.with_name(f"metrics_before_step_{reached}_{count}.csv")
    log.rename(kept)


def machine() -> str:
    """The machine in words: CPU cores and model, or the GPU; torch's version."""
    if torch.cuda.is_available():
        where = f"one {torch.cuda.get_device_name(0)}"
    else:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else platform.processor()
        where = f"{os.cpu_count()} CPU cores ({model}), no GPU"
    return f"{where}, torch {torch.__version__}"


def _global_step(checkpoint: Path) -> int:
    if not checkpoint.is_file():
        return 0
    return int(torch.load(checkpoint, map_location="cpu", weights_only=False).get("global_step", 0))


def _earlier_minutes(out: Path) -> float:
    path = out / "train_minutes.txt"
    return float(path.read_text()) if path.is_file() else 0.0


def _means(table: Path) -> dict[str, float]:
    """Mean DSC, bDSC, HD95 and the worst DSC of a benchmark CSV (HD95 of finite rows)."""
    with open(table) as handle:
        rows = list(csv.DictReader(handle))
    rows = [row for row in rows if row.get("dsc") not in (None, "")]
    dsc = np.array([float(row["dsc"]) for row in rows])
    hd95 = np.array([float(row["hd95"]) for row in rows])
    return {"cases": len(rows), "dsc": round(float(dsc.mean()), 4), "bdsc": round(float(np.mean([float(r["bdsc"]) for r in rows])), 4),
            "hd95_mm": round(float(hd95[np.isfinite(hd95)].mean()), 3), "worst_dsc": round(float(dsc.min()), 4)}


def _shown(path: Path) -> str:
    """A path as a command shows it: relative to the repository when inside it or beside it (../shared/…; the
    commands run from the repository's root)."""
    path = Path(path).resolve()
    if path.is_relative_to(REPO):
        return str(path.relative_to(REPO))
    return str(Path("..") / path.relative_to(REPO.parent)) if path.is_relative_to(REPO.parent) else str(path)


def _commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
