"""Row-parallel execution: every kernel treats each row (series) independently, so splitting rows into cache-sized
chunks, on threads, never changes a value. Temporaries of chunk size are reused per thread."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_CHUNK_CELLS = 1 << 18  # ≈ 2 MB per float64 array: the working set of a chunk stays in cache
MAX_THREADS = 4
_POOL: ThreadPoolExecutor | None = None
_LOCAL = threading.local()


def scratch(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A reusable temporary of this thread (chunk-sized arrays only; larger ones are allocated each time)."""
    size = math.prod(shape)
    if size > 2 * _CHUNK_CELLS:
        return np.empty(shape)
    cache = getattr(_LOCAL, "arrays", None)
    if cache is None:
        cache = _LOCAL.arrays = {}
    arr = cache.get(name)
    if arr is None or arr.size < size:
        arr = cache[name] = np.empty(size)
    return arr[:size].reshape(shape)


def _pool() -> ThreadPoolExecutor | None:
    """The shared worker pool (numpy and lfilter release the GIL), created on first use; None on one core."""
    global _POOL
    workers = min(os.cpu_count() or 1, MAX_THREADS)
    if workers < 2:
        return None
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="features")
    return _POOL


def by_rows(fn: Callable[..., None], n_out: int, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Run ``fn(*input_chunks, *output_chunks)`` on row chunks of ``arrays`` (same shape, rows × time); ``fn``
    writes its ``n_out`` results into the output chunks. Returns the outputs (rows × time)."""
    rows, length = arrays[0].shape
    outs = tuple(np.empty((rows, length)) for _ in range(n_out))
    step = max(1, _CHUNK_CELLS // max(length, 1))

    def work(a: int) -> None:
        fn(*(x[a: a + step] for x in arrays), *(o[a: a + step] for o in outs))

    pool = _pool()
    starts = range(0, rows, step)
    if pool is None or len(starts) == 1:
        for a in starts:
            work(a)
    else:
        list(pool.map(work, starts))
    return outs
