"""The one data pass alone over 60,000 CIFAR-sized images behind a per-sample Dataset (torchvision style: uint8
HWC -> normalized float CHW in ``__getitem__``; the 10k real test images of ../shared/data/cifar10_test.npz tiled
6x). Prints wall seconds, the main process's CPU seconds (workers excluded), peak RSS and the load average.

    python benchmarks/data_pass.py [LABEL]        # SANITYCHECK_THREADS=1 forces the main thread
"""

from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np
import torch
from torch.utils.data import Dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipelines import DATA  # noqa: E402

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)[:, None, None]
STD = np.array([0.247, 0.243, 0.261], np.float32)[:, None, None]


class CIFAR(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return torch.from_numpy((self.x[i].transpose(2, 0, 1).astype(np.float32) / 255 - MEAN) / STD), int(self.y[i])


def main() -> None:
    from sanitycheck.pipeline.data import materialize

    c = np.load(DATA / "cifar10_test.npz")
    x, y = np.concatenate([c["x_test"]] * 6), np.concatenate([c["y_test"]] * 6)
    start, cpu = time.perf_counter(), time.process_time()
    materialize(CIFAR(x, y), "train", max_samples=None, memory_mb=1024, input_key=None, target_key=None).data_pass()
    print(f"{sys.argv[1] if len(sys.argv) > 1 else 'data pass'}: 60k per-sample: {time.perf_counter() - start:.2f} s "
          f"wall, main CPU {time.process_time() - cpu:.2f} s, load {os.getloadavg()[0]:.2f}, peak "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()
