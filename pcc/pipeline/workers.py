"""Parallel work of a run: worker processes that design several cases at once, and the threads that
overlap one case's imports (torch, trimesh, matplotlib) with its reading and design."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pcc.pipeline.jobs import Job


def import_reader(job: Job) -> None:
    """Import the modules read_skull needs for this job."""
    import pcc.io  # noqa: F401
    import pcc.volume  # noqa: F401

    if job.ct is not None:
        import pcc.io.dicom  # noqa: F401
        import pcc.io.segment  # noqa: F401


def import_design() -> None:
    """Import design_implant's modules, torch included, and those it imports only when it first runs, so
    that during the design the main thread imports nothing the mesh's import thread could be importing."""
    from skimage.measure import marching_cubes  # noqa: F401  (scikit-image loads it on first use)

    import pcc.design  # noqa: F401
    import pcc.geometry.surface  # noqa: F401
    import pcc.geometry.voxelize  # noqa: F401


def import_mesh(*, picture: bool = False) -> None:
    """Import the printable mesh's library (and, for a preview, matplotlib's pyplot with its Agg backend)."""
    import trimesh  # noqa: F401

    if picture:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot  # noqa: F401


def in_thread(compute: Callable[[], Any]) -> Future:
    """compute() in a thread of its own; the Future gives (its result, its seconds) or raises its error
    (an import function's error stays in its Future: the main thread's own import raises it again)."""

    def timed() -> tuple[Any, float]:
        start = time.perf_counter()
        return compute(), time.perf_counter() - start

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pcc")
    future = executor.submit(timed)
    executor.shutdown(wait=False)  # the thread ends when compute() returns
    return future


_WORKER_MODEL: dict[str, Any] = {}


def _load_worker_model(model_path: str | Path | None, device: str) -> None:
    """Worker process start: ignore Ctrl-C (the main process stops the workers: SIGTERM, which ends a worker at
    once), load the model once (torch on one thread)."""
    import signal

    import torch

    from pcc.design import load_model

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    _WORKER_MODEL["model"] = load_model(model_path, device=device)


def _design_in_worker(task: tuple[Job, dict[str, Any]]) -> tuple[Job, dict[str, Any] | BaseException]:
    from pcc.pipeline.case import design_or_error

    job, options = task
    return job, design_or_error(job, lambda: _WORKER_MODEL["model"], options)


def design_in_workers(jobs: list[Job], workers: int, model_path, device: str, options: dict[str, Any]):
    """(job, record or exception) as the worker processes finish them (spawned: safe with CUDA).

    When the caller stops early (Ctrl-C, an error), leaving the `with` terminates the pool: every worker
    gets SIGTERM and ends at once (a Python handler would wait for the worker's main thread, which may be
    blocked in a lock); run_jobs then removes the files of the cases the report does not list."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(jobs)), initializer=_load_worker_model, initargs=(model_path, device)) as pool:
        yield from pool.imap_unordered(_design_in_worker, [(job, options) for job in jobs])
        pool.close()  # every case done: the workers end on their own
        pool.join()
