"""PyTorch 1.13 CPU side of bench/nn.exs: one MLP training step (forward, backward, SGD update).

Usage: /usr/bin/python3 bench/nn_torch.py SIZE REPS -> prints the median step time in microseconds.
Sizes as bench/nn.exs: small = batch 64, 32-64-64-1, MSE; large = batch 256, 784-512-512-10, cross-entropy.
"""
import sys
import time

import torch

torch.manual_seed(0)
size, reps = sys.argv[1], int(sys.argv[2])
if size == "small":
    dims, batch, classes = [32, 64, 64, 1], 64, None
else:
    dims, batch, classes = [784, 512, 512, 10], 256, 10
layers = []
for i in range(len(dims) - 1):
    layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
    if i < len(dims) - 2:
        layers.append(torch.nn.ReLU())
model = torch.nn.Sequential(*layers)
x = torch.randn(batch, dims[0])
y = torch.randint(0, classes, (batch,)) if classes else torch.randn(batch, 1)
loss_fn = torch.nn.functional.cross_entropy if classes else torch.nn.functional.mse_loss


def step():
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(0.01 * p.grad)
    return loss.item()


for _ in range(max(reps // 10, 3)):
    step()
times = []
for _ in range(reps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
times.sort()
print(f"{times[len(times) // 2] * 1e6:.1f}")
