"""Run reports (JSON): what was run, with what, on what, how long each stage took, and what came out.

    report = RunReport.start(model=model, device="cpu", command=sys.argv)
    report.add_case(case_record(...))
    report.write("run.json")

The report is rewritten (atomically) after every case, so an interrupted batch still leaves a
valid record of the cases it finished.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import socket
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "numpy", "scipy", "scikit-image", "trimesh", "open3d", "pynrrd", "nibabel", "lightning", "pytorch-lightning", "pykeops")


def library_versions() -> dict[str, str | None]:
    """Installed versions of pcc and the libraries it uses (None when one is not installed)."""
    versions: dict[str, str | None] = {}
    for name in ("pcc",) + LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


@dataclass
class RunReport:
    """A JSON-serialisable record of one `pcc implant` run."""

    header: dict[str, Any]
    cases: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, *, model=None, device: str | None = None, command: list[str] | None = None,
              options: dict[str, Any] | None = None) -> "RunReport":
        import torch

        model_info: dict[str, Any] | None = None
        if model is not None:
            source = Path(model.source)
            model_info = {
                "path": str(source.resolve()),
                "sha256": file_sha256(source) if source.is_file() else None,
                "metadata": _jsonable(getattr(model, "metadata", {}) or {}),
                # the pipeline's settings that designed this run's implants (pcc.design.settings.DesignSettings)
                "design_settings": model.settings.as_dict() if hasattr(model, "settings") else None,
            }
        resolved = str(model.device) if model is not None else device
        gpu = torch.cuda.get_device_name(torch.device(resolved)) if resolved and resolved.startswith("cuda") else None
        header = {
            "tool": "pcc implant",
            "started": _now(),
            "command": command,
            "options": _jsonable(options or {}),
            "versions": library_versions(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "host": socket.gethostname(),
            "device": {"requested": device, "used": resolved, "gpu": gpu, "torch_threads": torch.get_num_threads()},
            "model": model_info,
        }
        return cls(header)

    def add_case(self, record: dict[str, Any]) -> None:
        self.cases.append(record)

    def summary(self) -> dict[str, Any]:
        done = [c for c in self.cases if c.get("status") == "done"]
        times = [c["timings_s"]["total"] for c in done if "timings_s" in c]
        return {
            "cases": len(self.cases),
            "done": len(done),
            "skipped": sum(c.get("status") == "skipped" for c in self.cases),
            "failed": sum(c.get("status") == "failed" for c in self.cases),
            "warnings": sum(len(c.get("warnings", [])) for c in self.cases),
            "total_time_s": round(sum(times), 3),
            "mean_time_s": round(sum(times) / len(times), 3) if times else None,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.header, "finished": _now(), "summary": self.summary(), "cases": self.cases}

    def write(self, path: str | os.PathLike) -> None:
        from pcc.io import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(_jsonable(self.as_dict()), indent=2, allow_nan=False) + "\n")


def _jsonable(value: Any) -> Any:
    """Plain JSON types (numpy scalars and arrays, paths; non-finite floats → None)."""
    import math

    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
