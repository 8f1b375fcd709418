"""Reference cases for conv's gradients (test/reference/conv_grad.exs): the cotangents of x and w of
sum(conv(x, w, opts) * g), i.e. the conv_input_grad and conv_kernel_grad primitives, called through
Mx.ConvGrad (test/support/conv_grad.ex, Mx.vjp of Mx.conv).

Run with Debian's python: /usr/bin/python3 test/reference/generate_conv_grad.py

Each expected value is torch.autograd's gradient in float64 of Nx.conv written with differentiable
torch ops (input dilation by zero insertion, padding by F.pad, negative pads crop, batch groups by
slicing), from f32 inputs, rounded once to f32: float64's own error is ~2^-29 of f32's bound. aux holds
the gradient of the same sum over |x|, |w|, |g| (abs_product) and the terms per element (k).
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate_conv import conv_opts  # noqa: E402
from refdata import KW, Arr, Atom, CaseFile  # noqa: E402

MODULE = Atom('"Elixir.Mx.ConvGrad"')


def nx_conv(x, w, strides, pads, idil, kdil, fg, bg):
    S = x.dim() - 2
    xd = x.new_zeros(x.shape[:2] + tuple((n - 1) * d + 1 for n, d in zip(x.shape[2:], idil)))
    xd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in idil)] = x
    xp = F.pad(xd, [p for lo_hi in reversed(pads) for p in lo_hi])
    fn = [F.conv1d, F.conv2d, F.conv3d][S - 1]
    Np, Ob = xp.shape[0] // bg, w.shape[0] // bg
    parts = [fn(xp[j * Np:(j + 1) * Np], w[j * Ob:(j + 1) * Ob], stride=tuple(strides), dilation=tuple(kdil),
                groups=fg) for j in range(bg)]
    return torch.cat(parts, dim=1)


def grads(x, w, g, conv):
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (conv(xt, wt) * torch.tensor(g)).sum().backward()
    return xt.grad.numpy(), wt.grad.numpy()


def add(cf, rng, name, xs, ws, strides=None, pads=None, idil=None, kdil=None, fg=1, bg=1):
    S = len(xs) - 2
    strides, idil, kdil, pads = strides or [1] * S, idil or [1] * S, kdil or [1] * S, pads or [(0, 0)] * S
    conv = lambda x, w: nx_conv(x, w, strides, pads, idil, kdil, fg, bg)  # noqa: E731
    x = rng.normal(0, 1, xs).astype(np.float32).astype(np.float64)
    w = rng.normal(0, 1, ws).astype(np.float32).astype(np.float64)
    ys = tuple(conv(torch.tensor(x), torch.tensor(w)).shape)
    g = rng.normal(0, 1, ys).astype(np.float32).astype(np.float64)
    gx, gw = grads(x, w, g, conv)
    bx, bw = grads(np.abs(x), np.abs(w), np.abs(g), conv)
    opts = conv_opts(S, strides, pads, idil, kdil, fg, bg)
    args = [Arr("f32", x.astype(np.float32)), Arr("f32", w.astype(np.float32)), Arr("f32", g.astype(np.float32))]
    # terms per element: x's sums over its group's outputs and the taps, w's over the batch and positions
    k_x, k_w = ws[0] // (fg * bg) * int(np.prod(ws[2:])), xs[0] // bg * int(np.prod(ys[2:]))
    for fun, val, bound, k in (("conv_input_grad", gx, bx, k_x), ("conv_kernel_grad", gw, bw, k_w)):
        cf.add(f"{fun} {name} x {list(xs)} w {list(ws)}", fun, args, Arr("f32", val.astype(np.float32)),
               opts=KW(**opts), aux={"abs_product": Arr("f64", np.ascontiguousarray(bound)), "k": max(k, 1)})
        cf.cases[-1]["module"] = MODULE


def main():
    cf = CaseFile("conv_grad", "generate_conv_grad.py (torch.autograd in float64)")
    rng = np.random.default_rng(13)
    add(cf, rng, "2d same", [2, 4, 6, 6], [3, 4, 3, 3], pads=[(1, 1), (1, 1)])
    add(cf, rng, "2d strides, padding, both dilations, feature groups", [2, 4, 5, 5], [4, 2, 2, 2], strides=[2, 1],
        pads=[(1, 0), (0, 1)], idil=[1, 2], kdil=[1, 2], fg=2)
    add(cf, rng, "2d strides leaving a tail", [2, 3, 8, 7], [2, 3, 2, 2], strides=[3, 3])
    add(cf, rng, "2d 1x1 (the direct path)", [2, 5, 4, 4], [3, 5, 1, 1])
    add(cf, rng, "2d 1x1 strided", [2, 5, 5, 4], [3, 5, 1, 1], strides=[2, 1])
    add(cf, rng, "1d batch groups, strides", [4, 2, 7], [4, 2, 3], strides=[2], bg=2)
    add(cf, rng, "1d feature groups, kernel dilation, padding", [2, 6, 9], [6, 2, 3], kdil=[2], pads=[(2, 1)], fg=3)
    add(cf, rng, "1d depthwise", [3, 4, 8], [4, 1, 3], pads=[(1, 1)], fg=4)
    add(cf, rng, "3d negative padding, strides, dilation", [1, 2, 4, 5, 6], [2, 2, 2, 2, 3], strides=[1, 2, 1],
        pads=[(0, 0), (-1, 1), (1, -1)], kdil=[1, 1, 2])
    add(cf, rng, "3d batch groups, input dilation", [2, 2, 3, 3, 3], [4, 2, 2, 1, 2], idil=[2, 1, 1], bg=2)
    cf.write()


if __name__ == "__main__":
    main()
