"""PyTorch 1.13 side of bench/optim.exs: one MLP training step (forward, backward, Adam) in f32.
Prints the mean µs per step of each of `batches` batches of `n` steps, one per line.
Usage: /usr/bin/python3 bench/optim_torch.py IN HIDDEN OUT BATCH n batches"""
import sys
import time

import torch

i, h, o, b, n, batches = map(int, sys.argv[1:7])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(i, h), torch.nn.Tanh(), torch.nn.Linear(h, o))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(b, i), torch.randn(b, o)


def step():
    opt.zero_grad()
    loss = torch.mean((model(x) - y) ** 2)
    loss.backward()
    opt.step()


for _ in range(n):
    step()
for _ in range(batches):
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    print((time.perf_counter() - t0) / n * 1e6)
