"""Tests of the learned core: network, losses, data pairs, Lightning training (incl. DDP), pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nrrd
import numpy as np
import pytest
import torch
from conftest import tiny_nets
from scipy.spatial import cKDTree

from pcc.design.settings import DesignSettings
from pcc.learning import losses
from pcc.learning.cache import CachedCase
from pcc.learning.pairs import make_pair
from pcc.models import PointCompletionNet
from pcc.models.inputs import SampleSizes
from pcc.volume import Volume

REPO = Path(__file__).resolve().parents[2]
TINY_SIZES = dict(global_input=256, global_target=128, local_input=256, local_target=256)


def synthetic_case(shape=(48, 48, 40), spacing=1.5, hole_radius_mm=14.0, shift=(0.0, 0.0)):
    """(defective, implant) boolean arrays: a hollow ellipsoid shell with a round hole on top."""
    index = np.indices(shape).astype(float)
    centre = (np.asarray(shape) - 1) / 2.0 + np.array([shift[0], shift[1], -6.0])
    radii = np.array([20.0, 22.0, 18.0]) / spacing
    r = np.sqrt(sum(((index[a] - centre[a]) / radii[a]) ** 2 for a in range(3)))
    shell = (r <= 1.0) & (r >= 0.7)
    top = np.array([centre[0], centre[1], centre[2] + radii[2]])
    hole = np.sqrt(sum((index[a] - top[a]) ** 2 for a in range(3))) * spacing <= hole_radius_mm
    return shell & ~hole, shell & hole


def write_dataset(root: Path, count: int) -> None:
    """A tiny dataset in the challenge layout (defective_skull/, implant/, complete_skull/)."""
    header = {"space": "left-posterior-superior", "space directions": np.eye(3) * 1.5, "space origin": np.zeros(3), "encoding": "gzip"}
    for folder in ("defective_skull", "implant", "complete_skull"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        defective, implant = synthetic_case(hole_radius_mm=10.0 + 2 * i, shift=(i % 3 - 1.0, 0.0))
        for folder, array in (("defective_skull", defective), ("implant", implant), ("complete_skull", defective | implant)):
            nrrd.write(str(root / folder / f"{i:03d}.nrrd"), array.astype(np.int32), header)


def test_coordinates_stay_float32_under_bf16_autocast():
    """Training runs in bf16-mixed precision (configs/skullfix.yaml); the coordinate heads must not round
    points to bfloat16's 8 bits (about 0.4 % of the frame: 0.1–0.2 mm)."""
    torch.manual_seed(0)
    net = PointCompletionNet(width=16, feature_dim=32, coarse_points=20, children=4, neighbours=5)
    points = torch.randn(2, 100, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        coarse, fine, normals = net(points)
    assert coarse.dtype == fine.dtype == normals.dtype == torch.float32
    exact_coarse, exact_fine, _ = net(points)
    # close to the float32 network (bfloat16 hidden layers) but not rounded to bfloat16's grid
    assert (fine - exact_fine).abs().max() < 0.05
    assert not torch.equal(fine, fine.to(torch.bfloat16).float())


def test_network_shapes_and_unit_normals():
    net = PointCompletionNet(width=16, feature_dim=32, coarse_points=20, children=4, neighbours=5)
    coarse, fine, normals = net(torch.randn(3, 100, 6))
    assert coarse.shape == (3, 20, 3) and fine.shape == (3, 80, 3) and normals.shape == (3, 80, 3)
    assert torch.allclose(normals.norm(dim=-1), torch.ones(3, 80), atol=1e-5)
    # fine points stay within offset_scale of their coarse point
    offsets = fine.view(3, 20, 4, 3) - coarse[:, :, None, :]
    assert offsets.abs().max() <= net.offset_scale + 1e-6


def test_chamfer_matches_brute_force_and_backends_agree():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 50, 3, generator=generator), torch.rand(2, 70, 3, generator=generator)
    loss, _, _ = losses.chamfer_distance(x, y, backend="torch")
    d = torch.cdist(x, y)
    expected = d.min(dim=2).values.mean() + d.min(dim=1).values.mean()
    assert torch.allclose(loss, expected, atol=1e-5)
    if losses.pykeops_works():
        keops_loss, _, _ = losses.chamfer_distance(x, y, backend="keops")
        assert torch.allclose(keops_loss, expected, atol=1e-5)


def test_point_to_plane_loss_ignores_where_the_target_samples_fell_but_not_depth():
    generator = torch.Generator().manual_seed(0)
    def plane_sample(n: int) -> torch.Tensor:
        """(1, n, 3) random points of the plane z = 0."""
        points = torch.rand(1, n, 3, generator=generator)
        points[..., 2] = 0.0
        return points

    target, on_plane = plane_sample(400), plane_sample(400)
    target_normals = torch.zeros_like(target)
    target_normals[..., 2] = 1.0
    above = on_plane + torch.tensor([0.0, 0.0, 0.05])
    coarse = on_plane[:, :50]
    plain, planar = losses.CompletionLoss(backend="torch"), losses.CompletionLoss(backend="torch", plane_mix=1.0)

    def parts(loss: losses.CompletionLoss, fine: torch.Tensor) -> dict[str, torch.Tensor]:
        return loss(coarse, fine, target_normals[:, :400], target, target_normals)

    def back(fine: torch.Tensor) -> torch.Tensor:
        """Mean distance from each target point to its nearest predicted point."""
        return torch.cdist(target, fine).min(dim=2).values.mean()

    for fine in (on_plane, above):
        a, b = parts(plain, fine), parts(planar, fine)
        assert torch.equal(a["fine"], b["fine"])  # the logged Chamfer distance does not depend on plane_mix
        assert torch.allclose(a["loss"], a["fine"] + 0.5 * a["coarse"] + 0.1 * a["normal"])
        forward_part = b["loss"] - 0.5 * b["coarse"] - 0.1 * b["normal"] - back(fine)
        depth = 0.0 if fine is on_plane else 0.05  # point to plane: the depth alone, not the sample spacing
        assert abs(float(forward_part) - depth) < 1e-5
    assert float(parts(plain, on_plane)["fine"] - back(on_plane)) > 0.01  # point to point: the spacing counts
    with pytest.raises(ValueError, match="plane_mix"):
        losses.CompletionLoss(plane_mix=1.5)


def test_backend_falls_back_to_torch_when_pykeops_fails(monkeypatch):
    monkeypatch.setattr(losses, "pykeops_works", lambda: False)
    assert losses.choose_backend("auto", torch.device("cpu")) == "torch"
    assert losses.choose_backend("auto", torch.device("meta")) == "torch"
    with pytest.raises(RuntimeError, match="pykeops"):
        losses.choose_backend("keops", torch.device("cpu"))


def test_pairs_are_normalised_and_reproducible():
    from pcc.geometry.surface import volume_to_points

    defective, implant = synthetic_case()
    skull = volume_to_points(Volume(defective.astype(np.uint8), np.eye(3) * 1.5, np.zeros(3)), 4000)
    part = volume_to_points(Volume(implant.astype(np.uint8), np.eye(3) * 1.5, np.zeros(3)), 1000)
    case = CachedCase("x", skull.points, skull.normals, part.points, part.normals)
    sizes = SampleSizes(**TINY_SIZES)
    a = make_pair(case, sizes, np.random.default_rng(5), augment=True)
    b = make_pair(case, sizes, np.random.default_rng(5), augment=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["global_input"].shape == (256, 6) and a["local_target"].shape == (256, 3)
    assert a["global_input"][:, :3].abs().max() <= 1.0 + 0.2  # skull bbox frame (+ augmentation)
    assert a["local_target"].norm(dim=1).max() <= 1.5  # defect frame: implant within ~1 radius


def _tiny_config(tmp_path: Path, root: Path) -> Path:
    config = f"""
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  max_epochs: 2
  limit_train_batches: 2
  check_val_every_n_epoch: 1
  log_every_n_steps: 1
  enable_progress_bar: false
  logger:
    class_path: pytorch_lightning.loggers.CSVLogger
    init_args: {{save_dir: {tmp_path / 'runs'}, name: tiny}}
model:
  global_net:
    class_path: pcc.models.PointCompletionNet
    init_args: {{width: 16, feature_dim: 32, coarse_points: 32, children: 1, neighbours: 0}}
  local_net:
    class_path: pcc.models.PointCompletionNet
    init_args: {{width: 16, feature_dim: 32, coarse_points: 32, children: 4, neighbours: 4}}
  loss:
    class_path: pcc.learning.losses.CompletionLoss
    init_args: {{backend: torch}}
data:
  root: {root}
  cache_dir: {tmp_path / 'cache'}
  validation_cases: 1
  repeats: 2
  batch_size: 2
  num_workers: 0
  global_input: 256
  global_target: 128
  local_input: 256
  local_target: 256
optimizer:
  class_path: torch.optim.AdamW
  init_args: {{lr: 0.001}}
"""
    path = tmp_path / "tiny.yaml"
    path.write_text(config)
    return path


def _tiny_training(tmp_path: Path) -> Path:
    """A 3-case dataset in tmp_path/data and the tiny config that trains on it."""
    root = tmp_path / "data"
    write_dataset(root, 3)
    return _tiny_config(tmp_path, root)


def _run_pcc(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "pcc.cli", *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_lightning_cli_trains_validates_checkpoints_and_resumes(tmp_path):
    config = _tiny_training(tmp_path)
    schedule = ["--lr_scheduler.class_path", "torch.optim.lr_scheduler.StepLR", "--lr_scheduler.init_args.step_size", "1",
                "--lr_scheduler.init_args.gamma", "0.5"]
    result = _run_pcc("train", "fit", "--config", str(config), *schedule)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = (tmp_path / "runs" / "tiny" / "version_0" / "metrics.csv").read_text()
    assert "val/dsc" in metrics and "train/loss" in metrics
    checkpoints = sorted((tmp_path / "runs" / "tiny" / "version_0" / "checkpoints").glob("*.ckpt"))
    assert checkpoints
    first = torch.load(checkpoints[-1], map_location="cpu", weights_only=True)
    assert (first["epoch"], first["global_step"]) == (1, 4)  # 2 epochs of 2 batches
    resumed = _run_pcc("train", "fit", "--config", str(config), "--trainer.max_epochs", "3", "--ckpt_path", str(checkpoints[-1]),
                       *schedule)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # Resuming continues the epoch count, the global step and the learning-rate schedule where they stopped.
    last = torch.load(sorted((tmp_path / "runs" / "tiny" / "version_1" / "checkpoints").glob("*.ckpt"))[-1],
                      map_location="cpu", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, 6)
    assert last["lr_schedulers"][0]["last_epoch"] == 3
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.001 * 0.5**3)
    with open(tmp_path / "runs" / "tiny" / "version_1" / "metrics.csv") as handle:
        import csv

        epochs = {row["epoch"] for row in csv.DictReader(handle) if row.get("epoch")}
    assert epochs == {"2"}

    # the checkpoint loads as a model and designs an implant on the input's own grid
    from pcc.design import design_implant, load_model

    model = load_model(checkpoints[-1], device="cpu")
    defective, _ = synthetic_case()
    volume = Volume(defective.astype(np.uint8), np.diag([1.5, 1.4, 1.6]), np.array([-30.0, 10.0, 5.0]))
    implant = design_implant(volume, model)
    assert implant.same_grid(volume) and implant.array.dtype == np.uint8
    assert not (implant.mask() & volume.mask()).any()


def test_the_mirror_prior_trains_from_a_checkpoint_without_it_and_designs_implants(tmp_path):
    """A local network with prior=True fine-tunes from weights trained without the prior (its prior layers
    start at zero), trains on pairs that carry the mirror image and warps, and the checkpoint designs
    an implant through the pipeline's mirror alignment."""
    config = _tiny_training(tmp_path)
    first = _run_pcc("train", "fit", "--config", str(config), "--trainer.max_epochs", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    plain = sorted((tmp_path / "runs" / "tiny" / "version_0" / "checkpoints").glob("*.ckpt"))[-1]
    result = _run_pcc(
        "train", "fit", "--config", str(config), "--model.init_weights", str(plain),
        "--model.local_net.init_args.prior", "true", "--data.prior_input", "128",
        "--data.warp_mm", "1.5", "--data.prior_warp_mm", "1.0", "--trainer.max_epochs", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoint = sorted((tmp_path / "runs" / "tiny" / "version_1" / "checkpoints").glob("*.ckpt"))[-1]
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["pcc_networks"]["local_net"]["init_args"]["prior"] is True and state["pcc_sizes"]["prior_input"] == 128
    assert state["state_dict"]["local_net.prior_fine.weight"].abs().sum() > 0  # trained away from its zero start

    from pcc.design import design_implant, load_model

    model = load_model(checkpoint, device="cpu")
    assert model.local_net.prior and model.sizes.prior_input == 128
    defective, _ = synthetic_case()
    volume = Volume(defective.astype(np.uint8), np.diag([1.5, 1.4, 1.6]), np.array([-30.0, 10.0, 5.0]))
    implant = design_implant(volume, model)
    assert implant.same_grid(volume) and not (implant.mask() & volume.mask()).any()


def test_init_weights_starts_from_a_checkpoint_and_rejects_another_architecture(tmp_path):
    from pcc.learning.training import ImplantCompletion

    trained = ImplantCompletion(*tiny_nets())
    for parameter in trained.parameters():
        torch.nn.init.normal_(parameter)
    path = tmp_path / "trained.pt"
    torch.save({"state_dict": trained.state_dict()}, path)

    fine_tuned = ImplantCompletion(*tiny_nets(), init_weights=str(path))
    for name, value in trained.state_dict().items():
        assert torch.equal(fine_tuned.state_dict()[name], value), name
    wider = PointCompletionNet(width=32, feature_dim=32, coarse_points=32, children=1, neighbours=0)
    with pytest.raises(ValueError, match="global_net does not match"):
        ImplantCompletion(wider, tiny_nets()[1], init_weights=str(path))


def test_two_process_ddp_on_cpu_logs_validation_reduced_over_both_processes(tmp_path):
    """Two gloo processes each score one of the two validation cases; the logged val/dsc is their mean."""
    root = tmp_path / "data"
    write_dataset(root, 4)
    config = _tiny_config(tmp_path, root)
    result = _run_pcc(
        "train", "fit", "--config", str(config), "--trainer.strategy", "ddp", "--trainer.devices", "2",
        "--trainer.max_epochs", "1", "--data.validation_cases", "2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size: 2" in result.stderr or "GLOBAL_RANK: 1" in result.stderr or "distributed_backend=gloo" in result.stderr

    import csv

    from pcc.challenge.metrics import score_case
    from pcc.design.loading import load_model
    from pcc.design.prediction import predict_implant_cloud
    from pcc.design.reconstruction import implant_from_points
    from pcc.learning.data import SkullCompletionData, _volume_case

    with open(tmp_path / "runs" / "tiny" / "version_0" / "metrics.csv") as handle:
        logged = [row for row in csv.DictReader(handle) if row.get("val/chamfer_mm")]
    assert len(logged) == 1
    model = load_model(sorted((tmp_path / "runs" / "tiny" / "version_0" / "checkpoints").glob("*.ckpt"))[-1], device="cpu")
    data = SkullCompletionData(root=str(root), cache_dir=str(tmp_path / "cache"), validation_cases=2, num_workers=0, **TINY_SIZES)
    data.setup()
    chamfers, dscs = [], []
    for path, name in zip(data.validation_paths, data.validation_names):  # as ImplantCompletion.validation_step
        case = _volume_case(path, name)
        cloud = predict_implant_cloud(model.global_net, model.local_net, case["case"].skull_points,
                                      case["case"].skull_normals, sizes=model.sizes)
        truth = torch.from_numpy(case["case"].implant_points[None]).float()
        chamfers.append(float(losses.chamfer_distance(torch.from_numpy(cloud.points[None]).float(), truth)[0]))
        defective = Volume(case["defective"].astype(np.uint8), case["directions"], case["origin"])
        dscs.append(score_case(implant_from_points(cloud, defective), case["implant"], case["defective"], defective.spacing).dsc)
    # The processes run the networks with other thread counts, so their floats differ slightly from this
    # process's; what is checked is that the logged figure is the mean, far from either case's own value.
    gap = abs(chamfers[0] - chamfers[1])
    assert gap > 0.2, chamfers
    assert abs(float(logged[0]["val/chamfer_mm"]) - np.mean(chamfers)) < 0.1 * gap, (logged[0]["val/chamfer_mm"], chamfers)
    assert float(logged[0]["val/dsc"]) == pytest.approx(np.mean(dscs), abs=0.05)


def test_device_cuda_without_gpu_is_an_error():
    from pcc.design import resolve_device
    from pcc.errors import InputError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_shipped_model_designs_the_example_implant_with_its_recorded_figures(tmp_path):
    """The CPU path is deterministic: the example's DSC, bDSC and HD95 are those recorded in the weights'
    metadata when they were exported (tools/release/export_weights.py), within rounding, not merely 'good'."""
    import json

    from pcc.challenge.metrics import score_case
    from pcc.examples import EXAMPLE_DEFECTIVE, EXAMPLE_IMPLANT
    from pcc.io import read_volume

    recorded = json.loads((REPO / "pcc" / "weights" / "skullfix.json").read_text())["example_case"]
    output = tmp_path / "implant.nrrd"
    result = _run_pcc("implant", str(EXAMPLE_DEFECTIVE), "-o", str(output), "--device", "cpu", "--report",
                      str(tmp_path / "run.json"))
    assert result.returncode == 0, result.stderr[-2000:]
    predicted, truth = read_volume(output), read_volume(EXAMPLE_IMPLANT)
    # one implant everywhere: no stray part left in the volume, whose voxels are the report's
    from scipy import ndimage

    labels, parts = ndimage.label(predicted.mask())
    case = json.loads((tmp_path / "run.json").read_text())["cases"][0]
    assert parts == 1 and case["implant"]["voxels"] == int(predicted.mask().sum()), (parts, case["implant"])
    assert case["implant"]["specks_removed"]["parts"] > 0 and case["warnings"] == []
    assert case["quality"]["review"] is False and 0.85 < case["quality"]["expected_dsc"] <= 1.0
    assert predicted.same_grid(truth)
    defective = read_volume(EXAMPLE_DEFECTIVE)
    scores = score_case(predicted.mask(), truth.mask(), defective.mask(), defective.spacing)
    assert scores.dsc == pytest.approx(recorded["dsc"], abs=0.002)
    assert scores.bdsc == pytest.approx(recorded["bdsc"], abs=0.002)
    assert scores.hd95 == pytest.approx(recorded["hd95"], abs=0.05)


def test_damaged_weights_are_refused(tmp_path):
    """A weights file whose tensors no longer match the SHA-256 in its metadata is not used."""
    from pcc.design import SHIPPED_WEIGHTS, load_model
    from pcc.errors import InputError

    weights = torch.load(SHIPPED_WEIGHTS, map_location="cpu", weights_only=True)
    name = next(key for key in sorted(weights["state_dict"]) if key.startswith("local_net."))
    weights["state_dict"][name] = weights["state_dict"][name] * 1.01
    damaged = tmp_path / "damaged.pt"
    torch.save(weights, damaged)
    with pytest.raises(InputError, match="damaged"):
        load_model(damaged, device="cpu")


def test_cache_with_synthetic_defects_is_enough_to_train(tmp_path):
    """pcc-made defects are cached beside the real pairs, and the cache folder alone sets up training."""
    from conftest import craniotomy_training_set

    from pcc.learning.cases import synthetic_defects
    from pcc.learning.data import SkullCompletionData

    root = tmp_path / "training_set"
    craniotomy_training_set(root)

    data = SkullCompletionData(root=str(root), cache_dir=str(tmp_path / "cache"), validation_cases=1, synthetic_defects=2,
                               num_workers=0, **TINY_SIZES)
    data.setup()
    names = [case.name for case in data.train_cases]
    assert names[:2] == ["000.nrrd", "001.nrrd"] and len(names) == 2 + 2 * 2
    assert [d.shape for d in synthetic_defects(["000.nrrd", "001.nrrd"], 2)] == ["craniotomy", "cube", "sphere", "random"]
    assert data.validation_names == ["002.nrrd"]
    for case in data.train_cases:  # every case has both surfaces; the real and synthetic implants differ
        assert len(case.implant_points) == 4096 and len(case.global_points) == 4096 and len(case.skull_points) > 100
        assert np.allclose(np.linalg.norm(case.skull_normals, axis=1), 1.0, atol=1e-3)
    pair = make_pair(data.train_cases[-1], SampleSizes(**TINY_SIZES), np.random.default_rng(0), augment=True)
    assert pair["local_input"].shape == (256, 6)

    # Without the NRRD folder (e.g. on a GPU machine) the cache's cases.json gives the same cases.
    carried = SkullCompletionData(root=str(tmp_path / "elsewhere" / "training_set"), cache_dir=str(tmp_path / "cache"),
                                  validation_cases=1, synthetic_defects=2, num_workers=0, **TINY_SIZES)
    carried.setup()
    assert [c.name for c in carried.train_cases] == names
    assert np.array_equal(carried.train_cases[3].skull_points, data.train_cases[3].skull_points)

    # tools/release/compact_cache.py: a smaller copy to carry; each cloud keeps a subset of its points.
    subprocess.run([sys.executable, "-m", "tools.release.compact_cache", str(tmp_path / "cache"), str(tmp_path / "compact"),
                    "--skull-points", "200", "--global-points", "300", "--implant-points", "500"], check=True, cwd=REPO)
    compact = SkullCompletionData(root=str(tmp_path / "elsewhere" / "training_set"), cache_dir=str(tmp_path / "compact"),
                                  validation_cases=1, synthetic_defects=2, num_workers=0, **TINY_SIZES)
    compact.setup()
    assert [c.name for c in compact.train_cases] == names
    for small, full in zip(compact.train_cases, data.train_cases):
        assert len(small.skull_points) == min(200, len(full.skull_points))
        assert len(small.global_points) == 300 and len(small.implant_points) == 500
        assert np.isin(small.implant_points.view("V12"), full.implant_points.view("V12")).all()
    with pytest.raises(ValueError, match="rebuild"):
        SkullCompletionData(root=str(tmp_path / "elsewhere" / "training_set"), cache_dir=str(tmp_path / "cache"),
                            validation_cases=1, synthetic_defects=3).setup()
    with pytest.raises(FileNotFoundError, match="--data.root"):
        SkullCompletionData(root=str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "empty")).setup()


def test_a_revised_defect_shape_is_cut_again(monkeypatch, tmp_path):
    """A shape whose definition changed (pcc.learning.defects.SHAPE_REVISIONS) gets new cache files; others keep theirs."""
    from pcc.learning import defects
    from pcc.learning.cache import cache_path
    from pcc.learning.cases import SyntheticDefect

    root = Path("training_set")
    cube, sphere = SyntheticDefect("000.nrrd", "cube", 0), SyntheticDefect("000.nrrd", "sphere", 1)
    before = [cache_path(tmp_path, root, d.name, d.cache_key) for d in (cube, sphere)]
    assert before[0] == cache_path(tmp_path, root, cube.name)  # revision 1: the name alone
    monkeypatch.setitem(defects.SHAPE_REVISIONS, "sphere", 2)
    after = [cache_path(tmp_path, root, d.name, d.cache_key) for d in (cube, sphere)]
    assert after[0] == before[0] and after[1] != before[1] and after[1].name.startswith("000_sphere_1-")


def test_time_budget_anneals_the_learning_rate_and_stops(tmp_path):
    config = _tiny_training(tmp_path)
    result = _run_pcc(
        "train", "fit", "--config", str(config), "--trainer.max_epochs", "1000", "--trainer.limit_val_batches", "0",
        "--trainer.callbacks+=pcc.learning.training.TimeBudget", "--trainer.callbacks.minutes", "0.1",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "runs" / "tiny" / "version_0"
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    column = rows[0].index("train/lr")
    lrs = [float(r[column]) for r in rows[1:] if r[column]]
    assert lrs[0] > 0.9e-3 and lrs[-1] < 0.2e-3 and lrs == sorted(lrs, reverse=True)
    assert list((run / "checkpoints").glob("*.ckpt"))


def test_split_defects_separates_distant_groups_and_drops_stray_points():
    from pcc.design.prediction import split_defects

    rng = np.random.default_rng(0)
    left = rng.normal([-60.0, 0.0, 40.0], 8.0, (150, 3))
    right = rng.normal([60.0, 0.0, 40.0], 6.0, (100, 3))
    stray = np.array([[0.0, 90.0, 0.0]])
    groups = split_defects(np.vstack([right, stray, left]))
    assert [len(g) for g in groups] == [150, 100]
    assert np.allclose(groups[0].mean(axis=0), left.mean(axis=0))
    assert len(split_defects(left)) == 1


def test_centrality_order_puts_a_stray_global_guess_last():
    from pcc.design.prediction import centrality_order

    rng = np.random.default_rng(1)
    near = [rng.normal([50.0, 0.0, 30.0], 5.0, (64, 3)) for _ in range(3)]
    stray = rng.normal([-60.0, 20.0, 0.0], 5.0, (64, 3))
    order = centrality_order([stray, *near])
    assert sorted(order) == [0, 1, 2, 3] and order[-1] == 0
    assert list(centrality_order([stray])) == [0]


def test_within_reach_drops_voxels_far_from_every_point():
    from pcc.design.reconstruction import within_reach

    grid = Volume(np.zeros((30, 20, 10), dtype=np.uint8), np.diag([0.5, 0.5, 2.0]), np.array([5.0, 0.0, -3.0]))
    mask = np.zeros(grid.shape, dtype=bool)
    mask[2:8, 2:8, 2:4] = True  # around the points
    mask[20:28, 10:18, 5:9] = True  # a blob far from them
    points = grid.index_to_world(np.array([[3.0, 3.0, 2.0], [6.0, 6.0, 3.0]]))
    kept = within_reach(mask, points, grid, distance_mm=4.0)
    centres = grid.index_to_world(np.argwhere(mask))
    near = np.min(np.linalg.norm(centres[:, None] - points[None], axis=2), axis=1) <= 4.0
    assert np.array_equal(np.argwhere(kept), np.argwhere(mask)[near]) and not kept[20:].any()


def test_drop_slivers_keeps_the_body_and_its_thin_edge_but_not_a_thin_sheet_far_from_it():
    from pcc.geometry.masks import drop_slivers

    mask = np.zeros((60, 30, 30), dtype=bool)
    mask[5:25, 5:25, 5:25] = True  # the body, 20 voxels thick
    mask[25:28, 10:20, 14] = True  # a thin edge where it meets bone: within 2·radius of the body
    mask[25:55, 5:25, 20] = True  # a one-voxel sheet running 30 voxels away from it
    kept = drop_slivers(mask, radius=2)
    assert kept[5:25, 5:25, 5:25].all() and kept[25:28, 10:20, 14].all()
    assert not kept[30:55, :, 20].any()
    assert not (kept & ~mask).any()


def test_diamond_closing_and_slivers_equal_one_diamond_structuring_element():
    from scipy import ndimage

    from pcc.geometry.masks import diamond_closing, drop_slivers

    rng = np.random.default_rng(4)
    mask = ndimage.gaussian_filter(rng.random((40, 36, 30)), 2.0) > 0.5
    mask[0] |= rng.random((36, 30)) > 0.5  # touching the array's face
    for radius in (1, 2, 3):
        diamond = ndimage.iterate_structure(ndimage.generate_binary_structure(3, 1), radius)
        assert np.array_equal(diamond_closing(mask, radius), ndimage.binary_closing(mask, structure=diamond))
        body = ndimage.binary_opening(mask, structure=diamond)
        expected = mask & ndimage.binary_dilation(body, structure=diamond, iterations=2)
        assert np.array_equal(drop_slivers(mask, radius), expected)
    with pytest.raises(ValueError, match="radius"):
        diamond_closing(mask, 0)


def test_share_near_bone_matches_the_distance_to_the_nearest_bone_voxel_centre():
    from scipy.spatial import cKDTree

    from pcc.design.prediction import is_intact_bone, share_near_bone

    rng = np.random.default_rng(0)
    sheared = np.array([[0.5, 0.0, 0.0], [0.0, 0.7, 0.0], [0.0, 0.6, 1.2]])  # a gantry tilt
    rotated = np.array([[0.5, 0.0, 0.0], [0.0, 0.6 * 0.8, 0.6 * 0.6], [0.0, -1.2 * 0.6, 1.2 * 0.8]])  # orthogonal axes
    for density in (0.05, 0.7):  # scattered voxels; a solid with interior voxels
        array = (rng.random((12, 10, 8)) < density).astype(np.uint8)
        for directions in (np.diag([0.5, 0.7, 1.2]), rotated, sheared):
            bone = Volume(array, directions, np.array([10.0, -3.0, 4.0]))
            points = bone.index_to_world(rng.uniform(-3.0, [14.0, 12.0, 10.0], (500, 3)))  # some off the grid
            distances, _ = cKDTree(bone.index_to_world(np.argwhere(array))).query(points)
            for within in (0.6, 1.5, 2.5):  # 0.6 mm: less than half a voxel's diagonal
                assert share_near_bone(points, bone, within) == np.mean(distances <= within)
    median = float(np.median(distances))
    assert is_intact_bone(points, bone, median * 1.01) and not is_intact_bone(points, bone, median * 0.99)
    assert not is_intact_bone(np.zeros((0, 3)), bone, 1.5)


def test_time_budget_warms_up_linearly_then_follows_the_cosine():
    from types import SimpleNamespace

    from pcc.learning.training import TimeBudget

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    trainer = SimpleNamespace(optimizers=[optimizer])
    module = SimpleNamespace(log=lambda *args, **kwargs: None)
    budget = TimeBudget(minutes=10.0, final_lr_fraction=0.0, warmup_minutes=1.0)
    budget.on_train_start(trainer, module)
    lrs = []
    for elapsed_s in (15.0, 30.0, 60.0, 300.0):
        budget.elapsed = lambda s=elapsed_s: s
        budget.on_train_batch_start(trainer, module, None, 0)
        lrs.append(optimizer.param_groups[0]["lr"])
    cosine = [0.5 * (1 + np.cos(np.pi * s / 600.0)) for s in (15.0, 30.0, 60.0, 300.0)]
    assert np.allclose(lrs, [0.25 * cosine[0], 0.5 * cosine[1], cosine[2], cosine[3]])


def test_step_schedule_warms_up_linearly_then_follows_the_cosine_over_max_steps():
    from types import SimpleNamespace

    from pcc.learning.training import StepSchedule

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    trainer = SimpleNamespace(optimizers=[optimizer], max_steps=100, global_step=0)
    module = SimpleNamespace(log=lambda *args, **kwargs: None)
    schedule = StepSchedule(warmup_steps=10, final_lr_fraction=0.0)
    schedule.on_train_start(trainer, module)
    lrs = []
    for step in (0, 4, 9, 49, 99):
        trainer.global_step = step
        schedule.on_train_batch_start(trainer, module, None, 0)
        lrs.append(optimizer.param_groups[0]["lr"])
    cosine = [0.5 * (1 + np.cos(np.pi * (k + 1) / 100)) for k in (0, 4, 9, 49, 99)]
    assert np.allclose(lrs, [0.1 * cosine[0], 0.5 * cosine[1], cosine[2], cosine[3], 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="max_steps"):
        StepSchedule().on_train_start(SimpleNamespace(optimizers=[optimizer], max_steps=-1), module)


def test_step_schedule_ends_at_max_steps_and_a_resumed_run_keeps_its_place(tmp_path):
    """configs/skullfix.yaml's schedule (StepSchedule) through the Lightning CLI: training stops at trainer.max_steps with the
    rate annealed; resumed from a mid-run checkpoint, it continues the same schedule."""
    config = _tiny_training(tmp_path)
    schedule = ["--trainer.max_epochs", "1000", "--trainer.limit_val_batches", "0",
                "--trainer.callbacks+=pcc.learning.training.StepSchedule", "--trainer.callbacks.warmup_steps", "2"]
    result = _run_pcc("train", "fit", "--config", str(config), "--trainer.max_steps", "3", *schedule)
    assert result.returncode == 0, result.stderr[-2000:]
    first = tmp_path / "runs" / "tiny" / "version_0"
    checkpoint = sorted((first / "checkpoints").glob("*.ckpt"))[-1]
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"] == 3
    result = _run_pcc("train", "fit", "--config", str(config), "--trainer.max_steps", "8", *schedule,
                      "--ckpt_path", str(checkpoint))
    assert result.returncode == 0, result.stderr[-2000:]
    last = torch.load(sorted((tmp_path / "runs" / "tiny" / "version_1" / "checkpoints").glob("*.ckpt"))[-1],
                      map_location="cpu", weights_only=True)
    assert last["global_step"] == 8
    # step 7 (the last) trains at a cosine fraction of 8/8: the final 1% of the configured rate
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.001 * 0.01)

    # composed configs: the fine-tune override file after the base config, from the first run's weights
    result = _run_pcc("train", "fit", "--config", str(config), "--config", str(REPO / "configs" / "overrides" / "finetune.yaml"),
                      "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", "--model.init_weights", str(checkpoint))
    assert result.returncode == 0, result.stderr[-2000:]
    tuned = torch.load(sorted((tmp_path / "runs" / "tiny" / "version_2" / "checkpoints").glob("*.ckpt"))[-1],
                       map_location="cpu", weights_only=True)
    assert tuned["global_step"] == 2
    # the override's rate (10⁻⁴, not the tiny config's 10⁻³) × the cosine's end (1 %) × the override's
    # warm-up of 200 steps, at step 2 of 2 only 2/200 done
    assert tuned["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0001 * 0.01 * (2 / 200))


def test_shipped_training_config_is_from_scratch_and_fixed_in_steps():
    """configs/skullfix.yaml (the one-command from-scratch recipe) parses, starts from random weights and ends
    at a fixed step count with a step schedule (not a wall-clock budget)."""
    result = _run_pcc("train", "fit", "--config", str(REPO / "configs" / "skullfix.yaml"), "--print_config")
    assert result.returncode == 0, result.stderr[-2000:]
    import yaml

    config = yaml.safe_load(result.stdout)
    assert config["model"].get("init_weights") is None
    assert config["trainer"]["max_steps"] > 0
    callbacks = [c["class_path"] for c in config["trainer"]["callbacks"]]
    assert "pcc.learning.training.StepSchedule" in callbacks and "pcc.learning.training.TimeBudget" not in callbacks
    gpu = _run_pcc("train", "fit", "--config", str(REPO / "configs" / "skullfix.yaml"),
                   "--config", str(REPO / "configs" / "overrides" / "gpu.yaml"), "--print_config")
    assert gpu.returncode == 0, gpu.stderr[-2000:]
    composed = yaml.safe_load(gpu.stdout)
    assert composed["trainer"]["accelerator"] == "gpu" and composed["data"]["batch_size"] == 32
    assert composed["trainer"]["max_steps"] == config["trainer"]["max_steps"]  # the same schedule in steps
    assert composed["optimizer"]["init_args"]["weight_decay"] == config["optimizer"]["init_args"]["weight_decay"]


class _EchoNet(torch.nn.Module):
    """A stand-in network that returns its first input points (coarse and fine) and their normals."""

    def __init__(self, count: int):
        super().__init__()
        self.count = count
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def forward(self, points: torch.Tensor):
        echoed = points[:, : self.count]
        return echoed[..., :3], echoed[..., :3], echoed[..., 3:]


@pytest.mark.parametrize("mirror", [False, True])
def test_mirrored_passes_are_mirrored_back_to_the_input_side(mirror):
    from pcc.design.prediction import predict_implant_cloud

    rng = np.random.default_rng(3)
    points = rng.uniform([10.0, -30.0, 0.0], [70.0, 30.0, 40.0], (2000, 3))  # all on the +x side
    normals = rng.normal(size=(2000, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    sizes = SampleSizes(global_input=256, local_input=256)
    cloud = predict_implant_cloud(_EchoNet(64), _EchoNet(64), points, normals, sizes=sizes,
                                  settings=DesignSettings(local_passes=2, global_passes=2, mirror_passes=mirror))
    # An echo of the input must come back as input points with their own normals, mirrored or not.
    distance, index = cKDTree(points).query(cloud.points)
    assert len(cloud) == 2 * 64 and distance.max() < 1e-4  # float32 round trip; a mirror left in would be ≥ 20 mm
    assert np.allclose(cloud.normals, normals[index], atol=1e-5)


class _FixedGuesses(torch.nn.Module):
    """A stand-in global network: pass i of a batch guesses the (M, 3) points guesses[i] (its frame's units)."""

    def __init__(self, guesses: np.ndarray):
        super().__init__()
        self.guesses = torch.from_numpy(guesses.astype(np.float32))
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, points: torch.Tensor):
        coarse = self.guesses[: len(points)]
        return coarse, coarse, coarse


class _AtFrameCentre(torch.nn.Module):
    """A stand-in local network: predicts a 0.1-unit cluster at the centre of its defect frame."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, points: torch.Tensor):
        cluster = 0.1 * torch.from_numpy(np.random.default_rng(0).normal(size=(1, 32, 3)).astype(np.float32))
        cluster = cluster.expand(len(points), 32, 3)
        return cluster, cluster, torch.nn.functional.normalize(cluster, dim=-1)


@pytest.mark.parametrize("hole_guesses", [0, 3])
def test_when_the_most_central_guess_is_intact_bone_a_distinct_guess_is_tried(hole_guesses):
    from pcc.design.prediction import predict_implant_cloud
    from pcc.geometry.frames import global_frame

    array = np.ones((60, 20, 20), dtype=np.uint8)  # a 60 × 20 × 20 mm block of bone at 1 mm voxels ...
    array[40:, :, :] = 0  # ... whose last third is a hole
    bone = Volume(array, np.eye(3), np.zeros(3))
    rng = np.random.default_rng(0)
    skull = rng.uniform([0, 0, 0], [59, 19, 19], (3000, 3))
    normals = np.tile([0.0, 0.0, 1.0], (3000, 1))
    frame = global_frame(skull)
    on_bone, in_hole = np.array([15.0, 10.0, 10.0]), np.array([50.0, 10.0, 10.0])
    centres = [in_hole] * hole_guesses + [on_bone] * (8 - hole_guesses)  # the bone guesses are the majority
    guesses = np.stack([frame.to_local(c + rng.normal(0.0, 1.0, (64, 3))) for c in centres])
    sizes = SampleSizes(global_input=256, local_input=256)
    cloud = predict_implant_cloud(_FixedGuesses(guesses), _AtFrameCentre(), skull, normals, sizes=sizes,
                                  settings=DesignSettings(local_passes=2), bone=bone)
    if hole_guesses == 0:
        assert len(cloud) == 0  # every guess lies in bone: nothing is kept
    else:
        assert len(cloud) > 0 and np.linalg.norm(cloud.points.mean(axis=0) - in_hole) < 3.0


@pytest.mark.parametrize(("intact_bone_mm", "kept"), [(1.5, True), (2.5, False)])
def test_a_guess_beside_the_bone_is_a_hole_or_intact_bone_by_the_distance_given(intact_bone_mm, kept):
    from pcc.design.prediction import predict_implant_cloud
    from pcc.geometry.frames import global_frame

    array = np.ones((60, 20, 20), dtype=np.uint8)  # bone at 1 mm voxels, x = 0..39; a hole from x = 40
    array[40:, :, :] = 0
    bone = Volume(array, np.eye(3), np.zeros(3))
    rng = np.random.default_rng(0)
    skull = rng.uniform([0, 0, 0], [59, 19, 19], (3000, 3))
    normals = np.tile([0.0, 0.0, 1.0], (3000, 1))
    frame = global_frame(skull)
    beside = np.array([41.0, 10.0, 10.0])  # 2 mm from the nearest bone voxel centre (x = 39)
    guesses = np.stack([frame.to_local(beside + rng.normal(0.0, 0.2, (64, 3))) for _ in range(8)])
    cloud = predict_implant_cloud(_FixedGuesses(guesses), _AtFrameCentre(), skull, normals,
                                  sizes=SampleSizes(global_input=256, local_input=256), settings=DesignSettings(local_passes=2), bone=bone,
                                  intact_bone_mm=intact_bone_mm)
    assert (len(cloud) > 0) == kept
