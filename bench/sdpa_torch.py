"""Torch's side of bench/sdpa.exs: reads "B H L D mode threads reps" lines on stdin (mode fwd or
fwdbwd), answers the mean ns per call over one batch of reps calls. Debian's torch is 1.13, which
has no F.scaled_dot_product_attention (2.0), so this is its documented composition: softmax(q k^T
scale) v, float32, with autograd for fwdbwd (the loss sum(out * w), as the Mx side).
Run by bench/sdpa.exs with /usr/bin/python3 (python3-torch)."""
import math
import sys
import time

import torch

cache = {}


def attention(q, k, v):
    return torch.softmax((q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1])), dim=-1) @ v


for line in sys.stdin:
    b, h, l, d, mode, threads, reps = line.split()
    b, h, l, d, threads, reps = map(int, (b, h, l, d, threads, reps))
    torch.set_num_threads(threads)
    key = (b, h, l, d)
    if key not in cache:
        g = torch.Generator().manual_seed(1)
        cache[key] = [torch.randn(b, h, l, d, generator=g) for _ in range(4)]
    q, k, v, w = cache[key]
    if mode == "fwd":
        with torch.no_grad():
            t0 = time.perf_counter_ns()
            for _ in range(reps):
                attention(q, k, v)
            dt = (time.perf_counter_ns() - t0) / reps
    else:
        qs, ks, vs = (x.clone().requires_grad_(True) for x in (q, k, v))
        t0 = time.perf_counter_ns()
        for _ in range(reps):
            (attention(qs, ks, vs) * w).sum().backward()
        dt = (time.perf_counter_ns() - t0) / reps
    print(dt, flush=True)
