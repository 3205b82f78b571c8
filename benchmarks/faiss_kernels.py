"""FAISS's matrix products with the kernels its bundled OpenBLAS picks by itself, and with those
``sanitycheck.engine.faiss_loader`` picks from the CPU's flags.

    python benchmarks/faiss_kernels.py

Each way in a fresh interpreter (OpenBLAS chooses its kernels once, when it is loaded), seeded random float32 rows
of 192 dimensions (an 8x8 RGB thumbnail): exact search of 2,000 queries in 50,000 rows for k=1 and k=11, the
assignment step of k-means (28,600 rows to 447 centroids), and the IVF index of the 50,000 rows that
``sanitycheck.probing.neighbors.Index`` builds. Prints the OpenBLAS core type and the best of three seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import ctypes, glob, json, os, pathlib, sys, time
import numpy as np
if sys.argv[1] == "ours":
    from sanitycheck.engine.faiss_loader import load_faiss
    faiss = load_faiss()
else:
    import faiss
from sanitycheck.probing.neighbors import Index
faiss.omp_set_num_threads(os.cpu_count())
libs = glob.glob(str(pathlib.Path(faiss.__file__).parents[1] / "faiss_cpu.libs" / "libopenblas*"))
core = "unknown"
if libs:
    lib = ctypes.CDLL(libs[0])
    lib.openblas_get_corename.restype = ctypes.c_char_p
    core = lib.openblas_get_corename().decode()
rng = np.random.default_rng(0)
base = rng.standard_normal((50000, 192), dtype=np.float32)
queries = rng.standard_normal((2000, 192), dtype=np.float32)
points, centroids = base[:28600], queries[:447]


def best(fn):
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(min(times), 3)


print(json.dumps({"core": core,
                  "exact_k1_s": best(lambda: faiss.knn(queries, base, 1)),
                  "exact_k11_s": best(lambda: faiss.knn(queries, base, 11)),
                  "assign_s": best(lambda: faiss.knn(points, centroids, 1)),
                  "ivf_index_s": best(lambda: Index(base, seed=0))}))
"""


def main() -> int:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    for way in ("bundled", "ours"):
        out = subprocess.run([sys.executable, "-c", CHILD, way], env=env, capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{way:<8} OpenBLAS core {row['core']:<10} exact 2k x 50k: k=1 {row['exact_k1_s']:.3f} s, "
              f"k=11 {row['exact_k11_s']:.3f} s   k-means assignment {row['assign_s']:.3f} s   "
              f"IVF index of 50k {row['ivf_index_s']:.3f} s")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
