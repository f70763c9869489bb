"""Batch runs of `pcc implant`: same names out, resume, --num-parts split, reports, argument errors.

The network is replaced by a stand-in (monkeypatched load_model/design_implant that returns the
known implant of a synthetic case), so these tests check the batch logic, not the model.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nrrd
import numpy as np
import pytest
from conftest import bone_coloured, hollow_ellipsoid, implant_coloured, preview_panels

import pcc.design as pipeline
from pcc.challenge.metrics import dice
from pcc.cli import main
from pcc.io import read_volume, write_volume
from pcc.outputs.printing import voxel_world_box
from pcc.pipeline import Job, plan_folder, select_part
from pcc.volume import Volume

SHAPE, SHELL = (32, 30, 28), dict(radii=(13.0, 12.0, 11.0), thickness=3.5)
FULL = hollow_ellipsoid(SHAPE, **SHELL, hole_radius=0.0)
DEFECTIVE = hollow_ellipsoid(SHAPE, **SHELL, hole_radius=6.0)


class StandIn:
    """What load_model returns, for the report: a source file, a device, metadata and design settings."""

    def __init__(self, source: Path):
        from pcc.design.settings import DesignSettings

        self.source, self.device, self.metadata = source, "cpu", {"stand_in": True}
        self.settings = DesignSettings()


@pytest.fixture()
def fake_model(monkeypatch, tmp_path):
    calls = {"load": 0, "design": [], "members": []}
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"not a real model")

    def load_model(path=None, *, device="auto"):
        calls["load"] += 1
        return StandIn(weights)

    def design_implant(defective, model, *, settings=None, timings=None, specks=None):
        # the design itself (sampling seed 0) and the assessment's extra designs (other seeds), apart
        calls["design" if settings is None or settings.sampling_seed == 0 else "members"].append(defective.origin[0])
        if timings is not None:
            timings.update(cloud=0.01, network=0.02, voxelize_cleanup=0.03)
        return defective.with_array(((FULL != 0) & ~defective.mask()).astype(np.uint8))

    monkeypatch.setattr(pipeline, "load_model", load_model)
    monkeypatch.setattr(pipeline, "design_implant", design_implant)
    return calls


def make_cases(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        volume = Volume(DEFECTIVE, np.eye(3) * 1.5, np.array([float(index), 0.0, 0.0]))
        if name.endswith(".nrrd"):
            nrrd.write(str(folder / name), DEFECTIVE.astype(np.int32),
                       {"space": "left-posterior-superior", "space directions": np.eye(3) * 1.5,
                        "space origin": volume.origin, "encoding": "gzip"})
        else:
            write_volume(folder / name, volume)


def test_folder_run_resumes_and_reports(tmp_path, fake_model, capsys):
    names = ["a.nrrd", "b.nii.gz", "c.nrrd"]
    make_cases(tmp_path / "in", names)
    out, stl = tmp_path / "out", tmp_path / "stl"
    report = tmp_path / "run.json"
    args = ["implant", str(tmp_path / "in"), "-o", str(out), "--stl", str(stl), "--report", str(report), "--device", "cpu"]
    # an interrupted earlier run finished case a; case b got its volume but not its STL
    assert main(args[:6] + ["--num-parts", "3", "--part-id", "0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.nrrd"] and (stl / "a.stl").is_file()
    b = read_volume(tmp_path / "in" / "b.nii.gz")
    write_volume(out / "b.nii.gz", b.with_array(read_volume(out / "a.nrrd").array))  # reused, not redesigned
    fake_model["design"].clear()
    fake_model["members"].clear()
    fake_model["load"] = 0
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == names  # same file names, NIfTI stays NIfTI
    assert sorted(p.name for p in stl.iterdir()) == ["a.stl", "b.stl", "c.stl"]
    assert fake_model["design"] == [2.0] and fake_model["load"] == 1  # only c was designed, one load
    assert sorted(fake_model["members"]) == [1.0, 2.0]  # b's reused implant and c's are both assessed
    data = json.loads(report.read_text())
    status = {c["case"]: c["status"] for c in data["cases"]}
    assert status == {"a": "skipped", "b": "done", "c": "done"}
    c = next(case for case in data["cases"] if case["case"] == "c")
    assert c["mesh"]["ok"] and c["implant"]["thickness_mean_mm"] > 0 and "network" in " ".join(c["timings_s"])
    assert data["model"]["sha256"] and data["versions"]["numpy"] and data["summary"]["done"] == 2
    err = capsys.readouterr().err
    assert "[1/3] a: skipped" in err and "1 skipped" in err and "[3/3] c:" in err
    # a third run has nothing left to do and does not even load the model
    fake_model["load"] = 0
    assert main(args) == 0 and fake_model["load"] == 0
    # --overwrite redoes everything
    assert main(args + ["--overwrite"]) == 0 and len(fake_model["design"]) == 1 + 3


@pytest.mark.parametrize("count,parts", [(7, 3), (3, 5), (10, 4), (1, 1)])
def test_num_parts_cover_every_case_once(count, parts):
    items = [f"{i:03d}.nrrd" for i in range(count)]
    chosen = [select_part(items, parts, i) for i in range(parts)]
    flat = [x for part in chosen for x in part]
    assert sorted(flat) == items and len(flat) == count
    sizes = [len(part) for part in chosen]
    assert max(sizes) - min(sizes) <= 1


def test_plan_folder_uses_sorted_names_and_ignores_other_files(tmp_path):
    make_cases(tmp_path / "in", ["b.nrrd", "a.nii"])
    (tmp_path / "in" / "notes.txt").write_text("x")
    jobs = plan_folder(tmp_path / "in", tmp_path / "out", stl_dir=tmp_path / "s")
    assert [j.source.name for j in jobs] == ["a.nii", "b.nrrd"]
    assert [j.stl.name for j in jobs] == ["a.stl", "b.stl"] and jobs[0].preview is None
    assert Job(tmp_path / "x.nii.gz", tmp_path / "y.nii.gz").name == "x"


def test_single_file_with_preview_and_report(tmp_path, fake_model):
    import matplotlib.image
    import trimesh

    make_cases(tmp_path, ["case.nii.gz"])
    args = ["implant", str(tmp_path / "case.nii.gz"), "-o", str(tmp_path / "implant.nrrd"), "--stl", str(tmp_path / "i.stl"),
            "--preview", str(tmp_path / "i.png"), "--report", str(tmp_path / "r.json"), "--clearance", "1.5"]
    assert main(args) == 0
    implant = read_volume(tmp_path / "implant.nrrd")
    assert implant.same_grid(read_volume(tmp_path / "case.nii.gz")) and implant.mask().any()
    case = json.loads((tmp_path / "r.json").read_text())["cases"][0]
    assert case["mesh"]["clearance_mm"] == 1.5 and case["mesh"]["clearance_removed_mm3"] > 0
    assert case["mesh"]["watertight"] and case["mesh"]["components"] == 1
    # the STL itself: one closed solid in the implant's place, smaller than the voxels by the clearance
    mesh = trimesh.load(tmp_path / "i.stl")
    lower, upper = voxel_world_box(implant)
    voxel = implant.spacing.max()
    assert mesh.is_watertight and mesh.body_count == 1
    assert np.all(mesh.bounds[0] >= lower - voxel) and np.all(mesh.bounds[1] <= upper + voxel)
    assert np.all(mesh.bounds[1] - mesh.bounds[0] >= 0.5 * (upper - lower))
    assert mesh.volume == pytest.approx(case["mesh"]["mesh_volume_mm3"], rel=1e-4)  # the mesh the report checked
    # (the raw surface of this thin 1.5 mm-voxel part is 3.5 % under its voxels: the report's 2 % check flags it)
    voxels_mm3 = implant.mask().sum() * implant.voxel_volume
    assert mesh.volume < voxels_mm3
    assert mesh.volume == pytest.approx(voxels_mm3 - case["mesh"]["clearance_removed_mm3"], rel=0.05)
    # the preview shows the implant in every view and slice
    image = matplotlib.image.imread(tmp_path / "i.png")[..., :3]
    for name, panel in preview_panels(image).items():
        assert implant_coloured(panel).any() and bone_coloured(panel).any(), name


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--num-parts", "2", "--part-id", "2"], "part-id"),
        (["--num-parts", "0"], "num-parts"),
        (["--clearance", "-1"], "clearance"),
        (["--clearance", "abc"], "clearance"),
        (["--report", "r.txt"], ".json"),
        (["--model", "missing.pt"], "not found"),
        (["--thickness", "0"], "--thickness"),
        (["--thickness", "16"], "--thickness"),
        (["--holes", "12:10"], "smaller than the spacing"),
        (["--holes", "2x10"], "--holes"),
        (["--hole-margin", "3"], "add --holes"),
        (["--holes", "2:10", "--hole-margin", "0.5"], "margin"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, fake_model, capsys, monkeypatch, extra, message):
    make_cases(tmp_path / "in", ["a.nrrd"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as raised:
        status = main(["implant", "in", "-o", "out", *extra])
        raise SystemExit(status)
    err = capsys.readouterr().err
    assert raised.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert fake_model["design"] == []


def test_single_file_rejects_parts_and_bad_suffixes(tmp_path, fake_model, capsys):
    make_cases(tmp_path, ["a.nrrd"])
    source = str(tmp_path / "a.nrrd")
    for extra in (["--num-parts", "2"], ["--preview", str(tmp_path / "p.jpg")], ["--stl", str(tmp_path / "x.obj")]):
        assert main(["implant", source, "-o", str(tmp_path / "o.nrrd"), *extra]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "o.nrrd").exists()


def test_a_bad_case_in_a_folder_does_not_stop_the_others(tmp_path, fake_model, capsys):
    make_cases(tmp_path / "in", ["a.nrrd", "c.nrrd"])
    (tmp_path / "in" / "b.nrrd").write_text("NRRD0004\ngarbage\n")
    status = main(["implant", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert status == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.nrrd", "c.nrrd"]
    assert "b" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.slow
def test_workers_give_the_same_implants_as_one_process(tmp_path, capsys):
    """--workers N designs cases in N spawned processes (each loads the shipped model): the same non-empty
    implants, each in its own case's file (the holes differ, so do the implants)."""
    holes = {"a.nrrd": 5.0, "b.nrrd": 6.0, "c.nrrd": 7.0}
    (tmp_path / "in").mkdir()
    for name, radius in holes.items():
        shell = hollow_ellipsoid(SHAPE, **SHELL, hole_radius=radius)
        write_volume(tmp_path / "in" / name, Volume(shell, np.eye(3) * 1.5, np.zeros(3)))
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["implant", str(tmp_path / "in"), "-o", str(one), "--device", "cpu"]) == 0
    report = tmp_path / "run.json"
    assert main(["implant", str(tmp_path / "in"), "-o", str(two), "--device", "cpu", "--workers", "2",
                 "--report", str(report)]) == 0
    sequential = {name: read_volume(one / name).mask() for name in holes}
    for name in holes:
        assert sequential[name].any(), f"{name}: the one-process run designed an empty implant, nothing to compare"
        assert np.array_equal(sequential[name], read_volume(two / name).mask()), f"{name}: the workers' implant differs"
    assert not np.array_equal(sequential["a.nrrd"], sequential["b.nrrd"])
    assert not np.array_equal(sequential["b.nrrd"], sequential["c.nrrd"])
    assert json.loads(report.read_text())["summary"]["done"] == 3
    assert main(["implant", str(tmp_path / "in"), "-o", str(two), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.slow
def test_implant_on_the_gpu(tmp_path):
    """`pcc implant --device cuda` with the shipped model: runs on the GPU, implant as on the CPU."""
    make_cases(tmp_path, ["case.nrrd"])
    implants = {}
    for device in ("cpu", "cuda"):
        args = ["implant", str(tmp_path / "case.nrrd"), "-o", str(tmp_path / f"{device}.nrrd"), "--device", device,
                "--stl", str(tmp_path / f"{device}.stl"), "--report", str(tmp_path / f"{device}.json")]
        assert main(args) == 0
        implants[device] = read_volume(tmp_path / f"{device}.nrrd").mask()
        used = json.loads((tmp_path / f"{device}.json").read_text())["device"]
        assert used["used"].startswith(device) and (used["gpu"] is not None) == (device == "cuda"), used
    assert implants["cuda"].any() and not (implants["cuda"] & (DEFECTIVE != 0)).any()
    assert dice(implants["cuda"], implants["cpu"]) > 0.9  # floating-point order differs; the implant does not


def test_single_file_refuses_to_replace_an_output_and_creates_missing_folders(tmp_path, fake_model, capsys):
    make_cases(tmp_path, ["a.nrrd"])
    output = tmp_path / "new" / "dir" / "x.nrrd"
    args = ["implant", str(tmp_path / "a.nrrd"), "-o", str(output), "--confidence", str(tmp_path / "conf" / "x.nrrd")]
    assert main(args) == 0 and output.is_file() and (tmp_path / "conf" / "x.nrrd").is_file()
    before = output.stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert output.stat().st_mtime_ns == before and len(fake_model["design"]) == 1
    assert main(args + ["--overwrite"]) == 0 and len(fake_model["design"]) == 2


def test_folder_run_counts_its_cases_and_writes_a_confidence_map_per_case(tmp_path, fake_model, capsys):
    make_cases(tmp_path / "in", ["a.nrrd", "b.nrrd"])
    report = tmp_path / "r.json"
    assert main(["implant", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--confidence", str(tmp_path / "conf"),
                 "--report", str(report)]) == 0
    err = capsys.readouterr().err
    assert "[1/2] a:" in err and "[2/2] b:" in err and "1 warning" not in err.replace("1 warnings", "")
    for name in ("a.nrrd", "b.nrrd"):
        confidence, implant = read_volume(tmp_path / "conf" / name), read_volume(tmp_path / "out" / name)
        assert confidence.same_grid(implant) and confidence.array.dtype == np.uint8 and confidence.array.max() <= 100
        assert confidence.array[implant.mask()].mean() > 50  # the stand-in's members agree with it
        assert (tmp_path / "conf" / name).stat().st_mode & 0o777 == 0o666 & ~_umask()
    cases = json.loads(report.read_text())["cases"]
    for case in cases:
        quality = case["quality"]
        assert isinstance(quality["expected_dsc"], float) and isinstance(quality["review"], bool)
        assert isinstance(quality["reasons"], list)
        assert case["trust_signals"]["agreement"] == 1.0


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.slow
def test_an_interrupt_stops_every_worker_and_leaves_only_reported_files(tmp_path):
    """SIGINT to a `--workers 2` folder run: every pcc process ends within 5 s, and each output file on disk
    belongs to a case the report lists as done; the same command then resumes."""
    import signal
    import subprocess
    import time

    (tmp_path / "in").mkdir()
    cases = 16  # enough that the run cannot end before the interrupt reaches it, on a fast machine too
    for index in range(cases):
        shell = hollow_ellipsoid(SHAPE, **SHELL, hole_radius=5.0 + 0.2 * index)
        write_volume(tmp_path / "in" / f"{index}.nrrd", Volume(shell, np.eye(3) * 1.5, np.zeros(3)))
    out, stl, report = tmp_path / "out", tmp_path / "stl", tmp_path / "r.json"
    command = [sys.executable, "-m", "pcc.cli", "implant", str(tmp_path / "in"), "-o", str(out), "--stl", str(stl),
               "--report", str(report), "--workers", "2", "--device", "cpu"]
    # SIGINT back to its default in the child: a shell that starts a job in the background (as a CI runner may)
    # hands it on ignored, and Python then leaves Ctrl-C ignored too
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (report.is_file() and _done(report)):
        time.sleep(0.2)
    assert report.is_file() and _done(report), "no case finished in 240 s"
    workers = _children(process.pid)
    assert len(workers) >= 2, workers  # the two workers (and multiprocessing's resource tracker)
    process.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    process.wait(timeout=30)
    err = process.stderr.read()
    assert process.returncode == 130 and "run the same command again to resume" in err, err
    while time.monotonic() - stopped < 5 and _alive(workers):
        time.sleep(0.1)
    assert not _alive(workers), "a worker outlived the interrupt by 5 s"
    time.sleep(1.0)  # a surviving worker would write now
    done = _done(report)
    on_disk = {Path(p).name.split(".")[0] for p in [*out.iterdir(), *stl.iterdir()]}
    assert on_disk and on_disk <= done, (on_disk, done)
    assert len(done) < cases  # it was stopped early
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.nrrd" for i in range(cases))


def _done(report: Path) -> set[str]:
    """The cases a run's report lists as done."""
    return {case["case"] for case in json.loads(report.read_text())["cases"] if case["status"] == "done"}


def _children(pid: int) -> set[int]:
    """The processes whose parent is pid (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"PPid:\t{pid}\n" in (entry / "status").read_text():
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def _alive(pids: set[int]) -> set[int]:
    """Those of pids that still run (zombies, which have ended, do not count)."""
    running = set()
    for pid in pids:
        try:
            if "State:\tZ" not in (Path("/proc") / str(pid) / "status").read_text():
                running.add(pid)
        except OSError:
            continue
    return running


def test_folder_run_writes_a_review_page_per_case_and_an_index(tmp_path, fake_model, capsys):
    make_cases(tmp_path / "in", ["a.nrrd", "b.nrrd"])
    assert main(["implant", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--review", str(tmp_path / "pages")]) == 0
    pages = tmp_path / "pages"
    assert sorted(p.name for p in pages.iterdir()) == ["a.html", "b.html", "index.html"]
    index = (pages / "index.html").read_text(encoding="utf-8")
    assert 'href="a.html"' in index and 'href="b.html"' in index
    assert "<title>a — pcc" in (pages / "a.html").read_text(encoding="utf-8")
    assert f"review pages: {pages / 'index.html'}" in capsys.readouterr().err


def test_plate_options_design_again_what_other_options_wrote(tmp_path, fake_model, capsys):
    """A rerun with other plate options (here a thickness) designs every case again instead of skipping it or
    reusing its volume; a rerun with the same options skips."""
    make_cases(tmp_path / "in", ["a.nrrd", "b.nrrd"])
    report = tmp_path / "run.json"
    command = ["implant", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--report", str(report)]
    assert main(command) == 0
    first = len(fake_model["design"])
    assert main([*command, "--thickness", "3"]) == 0
    assert len(fake_model["design"]) == 2 * first  # designed again, not skipped
    assert "every case is designed again" in capsys.readouterr().err
    cases = json.loads(report.read_text())["cases"]
    assert [c["status"] for c in cases] == ["done", "done"] and all(c["plate"]["thickness_mm"] == 3.0 for c in cases)
    assert main([*command, "--thickness", "3"]) == 0
    assert len(fake_model["design"]) == 2 * first
    assert [c["status"] for c in json.loads(report.read_text())["cases"]] == ["skipped", "skipped"]


def test_a_plate_too_small_to_measure_is_made_with_a_warning():
    from pcc.pipeline.finish import FinishOptions, finish_implant

    small = hollow_ellipsoid(SHAPE, **SHELL, hole_radius=3.0)  # a 4.5 mm hole: no plate voxel 5 mm from bone
    defective = Volume(small, np.eye(3) * 1.5, np.zeros(3))
    implant = defective.with_array(((FULL != 0) & (small == 0)).astype(np.uint8))
    record, warnings = {}, []
    plate = finish_implant(implant, defective, FinishOptions(thickness_mm=3.0), record=record, timings={}, warnings=warnings)
    assert plate.mask().any() and not np.any(plate.mask() & defective.mask())
    assert record["plate"] == {"thickness_mm": 3.0} and "thickness was not measured" in warnings[0]

