"""Torch's side of bench/conv.exs: reads "N C H W O K threads reps mode" lines on stdin, answers
the mean wall-clock and CPU ns per call ("wall cpu"; float32, padding K//2) over one batch of reps calls. mode 0: conv2d forward
(no grad); mode 1: forward and backward, the gradients of sum(conv2d(x, w) * g) w.r.t. x and w.
Run by bench/conv.exs with Debian's /usr/bin/python3 (python3-torch)."""
import sys
import time

import torch
import torch.nn.functional as F

cache = {}


def fwd_bwd(x, wt, g, k):
    x.grad = wt.grad = None
    (F.conv2d(x, wt, padding=k // 2) * g).sum().backward()


for line in sys.stdin:
    n, c, h, w, o, k, threads, reps, mode = map(int, line.split())
    torch.set_num_threads(threads)
    key = (n, c, h, w, o, k)
    if key not in cache:
        gen = torch.Generator().manual_seed(1)
        x, wt = torch.randn(n, c, h, w, generator=gen), torch.randn(o, c, k, k, generator=gen)
        g = torch.randn(n, o, h, w, generator=gen)
        cache[key] = (x, wt, x.clone().requires_grad_(), wt.clone().requires_grad_(), g)
        F.conv2d(x, wt, padding=k // 2)  # warm-up: oneDNN picks its kernel
        fwd_bwd(*cache[key][2:], k)
    x, wt, xg, wg, g = cache[key]
    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    if mode == 0:
        with torch.no_grad():
            for _ in range(reps):
                F.conv2d(x, wt, padding=k // 2)
    else:
        for _ in range(reps):
            fwd_bwd(xg, wg, g, k)
    dt, dc = (time.perf_counter_ns() - t0) / reps, (time.process_time_ns() - c0) / reps
    print(float(dt), float(dc), flush=True)
