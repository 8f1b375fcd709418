"""Torch's side of bench/conv.exs: reads "N C H W O K threads reps" lines on stdin, answers
the mean ns per conv2d forward (float32, padding K//2) over one batch of reps calls.
Run by bench/conv.exs with Debian's /usr/bin/python3 (python3-torch)."""
import sys
import time

import torch
import torch.nn.functional as F

cache = {}
for line in sys.stdin:
    n, c, h, w, o, k, threads, reps = map(int, line.split())
    torch.set_num_threads(threads)
    key = (n, c, h, w, o, k)
    if key not in cache:
        g = torch.Generator().manual_seed(1)
        cache[key] = (torch.randn(n, c, h, w, generator=g), torch.randn(o, c, k, k, generator=g))
        F.conv2d(*cache[key], padding=k // 2)  # warm-up: oneDNN picks its kernel
    x, wt = cache[key]
    with torch.no_grad():
        t0 = time.perf_counter_ns()
        for _ in range(reps):
            F.conv2d(x, wt, padding=k // 2)
        dt = (time.perf_counter_ns() - t0) / reps
    print(dt, flush=True)
