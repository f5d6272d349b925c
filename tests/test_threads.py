"""threads: a serving process runs numpy's BLAS on one thread (the API does it when it is made)."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import json
from threadpoolctl import threadpool_info
before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
from fashionrec.threads import one_blas_thread
import numpy
one_blas_thread()
after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
print(json.dumps([before, after]))
"""


def test_one_blas_thread_limits_numpys_blas() -> None:
    shown = subprocess.run([sys.executable, "-c", "import numpy\n" + CHECK], capture_output=True, text=True,
                           timeout=120, check=True)
    before, after = json.loads(shown.stdout)
    assert after and all(n == 1 for n in after)
    assert before == [] or len(before) == len(after)
