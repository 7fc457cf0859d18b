#!/usr/bin/env python3
"""One-thread PyTorch throughput of ref-train-cnn's 3x3 32->64 convolution (batch 64, 32x32), for the
floor argument in docs/benchmarks.md (issue 3). Needs python3-torch. Prints GFLOP/s and ms (median of 9)."""
import statistics, time
import torch

torch.set_num_threads(1)
x = torch.randn(64, 32, 32, 32)
w = torch.randn(64, 32, 3, 3)
f = lambda: torch.nn.functional.conv2d(x, w, padding=1)
for _ in range(3):
    f()
times = []
for _ in range(9):
    t0 = time.perf_counter()
    f()
    times.append(time.perf_counter() - t0)
ms = statistics.median(times) * 1000
flop = 2 * 64 * 32 * 32 * 64 * 32 * 9
print(f"torch {torch.__version__}, 1 thread: {flop / ms / 1e6:.1f} GFLOP/s ({ms:.1f} ms)")
