"""One BLAS thread in a process that answers queries: numpy's thread pool and the model's must not fight.

A query's numpy work is small (a projection and a search: matrix-vector products) and gains nothing from BLAS
threads, but OpenBLAS's threads spin-wait after each product, taking the cores from ONNX Runtime's threads that run
the model next (and ONNX Runtime's, spinning after the model, from numpy). Measured on 2 cores
(`benchmarks/query_overhead.py`, the 17 full-resolution photos): by_image p50 42 ms with numpy's default threads,
23 ms with one; the model's forward pass alone, run between queries, 17 ms against 6.7 ms. Whole-catalog work
(indexing, whitening fits, similar-all) keeps its threads: only the serving processes call this (`fashionrec serve`;
the web app's process gets OPENBLAS_NUM_THREADS=1 from `launch`, and the README runs uvicorn's workers so), never a
library call or a one-query command, whose process may be doing other work (and whose float sums would change with
the thread count: the last bits of a similarity, enough to swap two near-tied products).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def one_blas_thread() -> None:
    """Limit this process's BLAS libraries (numpy's OpenBLAS) to one thread; a no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a dependency of fashionrec; only a broken install lacks it
        log.warning("threadpoolctl is not installed: numpy keeps its BLAS threads, and queries are slower")
        return
    threadpool_limits(limits=1, user_api="blas")
