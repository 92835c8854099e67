"""Run independent blocks of CPU-bound work in parallel, results in input order.

One function for every data command that parallelises over records (``preprocess``, ``priors``,
``build``): the work is cut into contiguous blocks, each block is one task, and results come back
**in block order**, so the output is byte-identical whatever the number of workers or the engine:

- ``workers <= 1`` and no scheduler: a plain loop in this process;
- ``workers > 1``: a local process pool (``concurrent.futures``, no extra dependency);
- ``scheduler``: a Dask cluster (``dask.distributed``, optional extra ``sarvlm[dask]``): an address
  such as ``tcp://10.0.0.5:8786`` (a running ``dask scheduler``; the workers must see the same
  file system as this process), or ``local`` for a ``LocalCluster`` of ``workers`` processes on this
  machine. Tasks are submitted with ``pure=False`` and gathered in order.

Block functions must be picklable (module-level) and write only their own files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sarvlm.core.errors import MissingDependency, SarvlmError

T = TypeVar("T")
R = TypeVar("R")


def split_blocks(items: Sequence[T], n_blocks: int) -> list[Sequence[T]]:
    """``items`` cut into at most ``n_blocks`` contiguous, non-empty blocks of near-equal size."""
    n = len(items)
    k = max(1, min(n_blocks, n))
    bounds = [(i * n) // k for i in range(k + 1)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def check_workers(workers: int | None) -> int:
    if workers is None:
        return 1
    if workers < 1:
        raise SarvlmError(f"--workers must be >= 1, got {workers}")
    return workers


def run_blocks(
    fn: Callable[..., R],
    blocks: Sequence[Any],
    *,
    args: tuple = (),
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[R]:
    """``[fn(*args, block) for block in blocks]``, computed by ``workers`` processes or a Dask
    cluster; ``progress(n_done)`` is called as blocks finish."""
    workers = check_workers(workers)
    if scheduler:
        return _run_dask(fn, blocks, args, workers, scheduler, progress)
    if workers <= 1 or len(blocks) <= 1:
        out = []
        for i, block in enumerate(blocks):
            out.append(fn(*args, block))
            if progress:
                progress(i + 1)
        return out
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(workers, len(blocks))) as pool:
        futures = {pool.submit(fn, *args, block): i for i, block in enumerate(blocks)}
        results: list[Any] = [None] * len(blocks)
        for done, fut in enumerate(as_completed(futures), 1):
            results[futures[fut]] = fut.result()
            if progress:
                progress(done)
    return results


def _run_dask(
    fn: Callable[..., R],
    blocks: Sequence[Any],
    args: tuple,
    workers: int,
    scheduler: str,
    progress: Callable[[int], None] | None,
) -> list[R]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise MissingDependency("dask.distributed", "dask", "--scheduler") from None
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        _check_reachable(scheduler)
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise SarvlmError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from None
    try:
        futures = [client.submit(fn, *args, block, pure=False) for block in blocks]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(blocks)
        for done, fut in enumerate(as_completed(futures), 1):
            results[index[fut.key]] = fut.result()
            if progress:
                progress(done)
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_reachable(address: str) -> None:
    """Fail in milliseconds, not after the client's connect timeout, when nothing listens there."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or parts.port is None:
        return  # other comm schemes (inproc, ucx, ws) are left to dask
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=5):
            pass
    except OSError as exc:
        raise SarvlmError(f"--scheduler {address}: cannot reach the Dask scheduler ({exc})") from None
