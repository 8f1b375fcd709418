"""Reference cases for Mx.quantize / dequantize / quantized_matmul (test/reference/quant.exs).

Run with Debian's python: /usr/bin/python3 test/reference/generate_quant.py

There is no MLX on this machine (no Apple silicon, no pip): the affine scheme is written here
in numpy, step by step after MLX's CPU kernel (mlx/backend/cpu/quantized.cpp, `quantize`),
in the weight's precision (numpy f32 scalars round every operation as C floats do):
  scale = max((max - min) / n, 1e-7), negated unless |min| > |max|; edge = min if |min| > |max| else max;
  q0 = rint(edge / scale); q0 != 0: scale = edge / q0, bias = edge; else bias = 0;
  q = clip(rint((w - bias) / scale), 0, n), n = 2^bits - 1, rint half to even;
packed 32/bits values a u32 word, the first in the low bits. Dequantize is scale * q + bias
(the product rounded, then the sum: bit-exact). quantized_matmul's expected value is x @ W~
(W~ the dequantized weight) in long double, rounded once; aux.abs_product holds
sum |x| (|scale| q + |bias|) per output and aux.k the contraction length, for the tolerance.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import KW, NP, Arr, CaseFile  # noqa: E402

SRC = "generate_quant.py (MLX's affine quantization in numpy; no MLX here)"


def quantize(w, gs, bits):
    """MLX's affine quantize of w [..., K] (f32 or f64): (w_q u32, scales, biases, q)."""
    t = w.dtype.type
    n_bins, eps = t((1 << bits) - 1), t(1e-7)
    g = w.reshape(-1, w.shape[-1] // gs, gs)
    scales = np.empty(g.shape[:2], w.dtype)
    biases = np.empty(g.shape[:2], w.dtype)
    q = np.empty(g.shape, np.uint32)
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            v = g[i, j]
            lo, hi = v.min(), v.max()
            mask = abs(lo) > abs(hi)
            scale = max(t((hi - lo) / n_bins), eps)
            scale = scale if mask else t(-scale)
            edge = lo if mask else hi
            q0 = np.rint(t(edge / scale))
            bias = t(0)
            if q0 != 0:
                scale = t(edge / q0)
                bias = edge
            qq = np.clip(np.rint((v - bias) / scale), 0, n_bins)
            q[i, j] = qq.astype(np.uint32)
            scales[i, j], biases[i, j] = scale, bias
    per = 32 // bits
    flat = q.reshape(-1, w.shape[-1] // per, per).astype(np.uint64)
    words = (flat << (np.arange(per, dtype=np.uint64) * bits)).sum(axis=-1).astype(np.uint32)
    lead = w.shape[:-1]
    return (words.reshape(lead + (w.shape[-1] * bits // 32,)), scales.reshape(lead + (-1,)),
            biases.reshape(lead + (-1,)), q.reshape(w.shape))


def dequantize(q, scales, biases, gs):
    s = np.repeat(scales, gs, axis=-1)
    b = np.repeat(biases, gs, axis=-1)
    return (s * q.astype(scales.dtype)) + b  # numpy rounds the product, then the sum


def tname(a):
    return {np.float32: "f32", np.float64: "f64"}[a.dtype.type]


def shape_str(s):
    return "[" + ",".join(str(d) for d in s) + "]"


def main():
    rng = np.random.default_rng(20261206)
    f = CaseFile("quant", SRC)

    def weights(shape, dtype, kind="normal"):
        w = rng.standard_normal(shape)
        if kind == "negative":  # |min| > |max| in every group: scale positive, edge = min
            w = -np.abs(w) - 0.25
        return w.astype(dtype)

    # quantize and dequantize: every bits x group size, f32; f64; rank 3; special groups.
    specs = [(bits, gs, np.float32, (3, 2 * gs), "normal") for bits in (2, 4, 8) for gs in (32, 64, 128)]
    specs += [(4, 64, np.float64, (2, 128), "normal"), (8, 32, np.float64, (2, 64), "normal"),
              (4, 32, np.float32, (2, 2, 64), "normal"), (2, 32, np.float32, (2, 64), "negative")]
    cases = [(b, g, d, s, k, weights(s, d, k)) for b, g, d, s, k in specs]
    # a constant group (max == min: scale is 1e-7), a group within half a step of 0 (q0 == 0,
    # bias 0), integer ramps (exact, with ties to even after the rescale), and a zero group
    special = np.zeros((4, 32), np.float32)
    special[0] = 3.0
    special[1] = rng.uniform(-3e-8, 4e-8, 32).astype(np.float32)  # the 1e-7 floor: |edge / scale| < 1/2
    special[2] = np.arange(32) % 16
    special[3] = 0.0
    cases.append((4, 32, np.float32, special.shape, "special", special))
    ties = (np.arange(64, dtype=np.float32) * np.float32(0.5) - np.float32(7.0)).reshape(1, 64)
    cases.append((2, 64, np.float32, ties.shape, "half steps", ties))
    for bits, gs, dt, shape, kind, w in cases:
        wq, s, b, q = quantize(w, gs, bits)
        opts = KW(group_size=gs, bits=bits)
        name = f"{tname(w)} {shape_str(shape)} bits {bits} group {gs} {kind}"
        f.add("quantize " + name, "quantize", [Arr(tname(w), w)], (Arr("u32", wq), Arr(tname(s), s), Arr(tname(b), b)),
              opts)
        deq = dequantize(q, s, b, gs)
        f.add("dequantize " + name, "dequantize", [Arr("u32", wq), Arr(tname(s), s), Arr(tname(b), b)],
              Arr(tname(deq), deq), opts)

    # quantized_matmul: direct loop (<= 8 rows, transpose), BLAS tiles, no transpose, rank 3, f64.
    mm = [(4, 64, np.float32, (1, 128), 48, True), (4, 32, np.float32, (5, 64), 40, True),
          (2, 128, np.float32, (3, 256), 20, True), (8, 64, np.float32, (20, 128), 24, True),
          (4, 64, np.float32, (3, 40), 128, False), (8, 32, np.float32, (12, 24), 64, False),
          (4, 32, np.float32, (2, 3, 64), 16, True), (4, 64, np.float64, (4, 128), 16, True),
          (2, 32, np.float64, (9, 32), 64, True), (4, 32, np.float64, (3, 8), 64, False)]
    # the AVX2 direct loop (f32, up to 32 rows: every bits, 1-4 rows a block) and the tiles past it
    mm += [(8, 128, np.float32, (8, 256), 40, True), (8, 32, np.float32, (2, 64), 24, True),
           (2, 32, np.float32, (32, 64), 20, True), (4, 64, np.float32, (33, 128), 24, True),
           (8, 64, np.float32, (40, 128), 16, True)]
    # batched weights: leading axes broadcast as matmul's; a vector x is one row
    mm += [(4, 32, np.float32, (5, 64), (3, 12, 64), True), (4, 64, np.float32, (128,), (2, 16, 128), True),
           (8, 32, np.float32, (2, 1, 3, 64), (4, 10, 64), True), (2, 32, np.float64, (3, 40, 64), (3, 8, 64), True),
           (4, 32, np.float32, (2, 3, 24), (2, 24, 64), False), (4, 32, np.float32, (3, 1, 2, 64), (1, 2, 8, 64), True)]
    for bits, gs, dt, xshape, other, transpose in mm:
        k = xshape[-1]
        if isinstance(other, tuple):
            wshape = other
        else:
            wshape = (other, k) if transpose else (k, other)
        w = weights(wshape, dt)
        x = rng.standard_normal(xshape).astype(dt)
        wq, s, b, q = quantize(w, gs, bits)
        deq = dequantize(q, s, b, gs)
        wm = np.swapaxes(deq, -1, -2) if transpose else deq  # [..., K, N]
        exact = np.matmul(x.astype(np.longdouble), wm.astype(np.longdouble))
        sq = np.abs(np.repeat(s, gs, axis=-1)).astype(np.longdouble) * q.astype(np.longdouble)
        mag = sq + np.abs(np.repeat(b, gs, axis=-1)).astype(np.longdouble)
        mag = np.swapaxes(mag, -1, -2) if transpose else mag
        abs_product = np.matmul(np.abs(x).astype(np.longdouble), mag).astype(np.float64)
        t = tname(x)
        name = (f"quantized_matmul {t} x {shape_str(xshape)} w {shape_str(wshape)} transpose {transpose} "
                f"bits {bits} group {gs}")
        f.add(name, "quantized_matmul", [Arr(t, x), Arr("u32", wq), Arr(t, s), Arr(t, b)],
              Arr(t, exact.astype(dt)), KW(transpose=transpose, group_size=gs, bits=bits),
              {"abs_product": Arr("f64", abs_product), "k": k})
    f.write()


if __name__ == "__main__":
    main()
