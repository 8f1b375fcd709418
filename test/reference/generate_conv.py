"""Reference cases for Mx.conv and the window reductions (test/reference/conv.exs, window.exs).

Run with Debian's python: /usr/bin/python3 test/reference/generate_conv.py

conv: each expected value is Nx.conv's sum computed in long double (64-bit mantissa) by a
direct loop over taps here, rounded once to the dtype; every case is also checked against
torch (torch.nn.functional.conv1d/2d/3d with groups, dilation and stride, conv_transpose1d/2d,
in float64) so the mapping of Nx's options is tested. aux holds sum |x||w| per output
(abs_product) and the terms per output (k) for the tolerance.

window_*: numpy loops over the windows; sums use math.fsum (the exact sum rounded once),
products Fractions, max/min pick an element; window_scatter_* adds small-integer sources
(exact in any order).
"""
import math
import os
import sys
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import KW, NP, Arr, Atom, CaseFile  # noqa: E402

SRC = "generate_conv.py (long double loops checked against torch; numpy window loops)"


def A(t, values):
    v = np.asarray(values)
    return Arr(t, v.astype(NP[t]))


def shape_str(s):
    return "[" + ",".join(str(d) for d in s) + "]"


# ---- conv -------------------------------------------------------------------------------


def dilate_pad(x, idil, pads):
    """Nx's input dilation (d - 1 zeros between elements) then padding (negative crops)."""
    S = x.ndim - 2
    for d in range(S):
        ax = 2 + d
        n = x.shape[ax]
        if idil[d] > 1 and n > 0:
            shape = list(x.shape)
            shape[ax] = (n - 1) * idil[d] + 1
            y = np.zeros(shape, x.dtype)
            idx = [slice(None)] * x.ndim
            idx[ax] = slice(None, None, idil[d])
            y[tuple(idx)] = x
            x = y
        lo, hi = pads[d]
        widths = [(0, 0)] * x.ndim
        widths[ax] = (max(lo, 0), max(hi, 0))
        x = np.pad(x, widths)
        idx = [slice(None)] * x.ndim
        idx[ax] = slice(-min(lo, 0), x.shape[ax] - (-min(hi, 0)))
        x = x[tuple(idx)]
    return x


def conv_loop(x, w, strides, pads, idil, kdil, fg, bg, dtype):
    """Nx.conv in `dtype` (long double for values, float64 for the |x||w| bound)."""
    xp = dilate_pad(x.astype(dtype), idil, pads)
    w = w.astype(dtype)
    S = x.ndim - 2
    N, C = xp.shape[:2]
    O, Cg = w.shape[:2]
    ks = w.shape[2:]
    osz = [max(0, (xp.shape[2 + d] - ((ks[d] - 1) * kdil[d] + 1)) // strides[d] + 1) for d in range(S)]
    Np = N // bg
    out = np.zeros([Np, O] + osz, dtype)
    for o in range(O):
        for n in range(Np):
            if bg > 1:
                src, c0 = (o // (O // bg)) * Np + n, 0
            else:
                src, c0 = n, (o // (O // fg)) * Cg
            acc = np.zeros(osz, dtype)
            for c in range(Cg):
                for tap in np.ndindex(*ks):
                    idx = tuple(slice(tap[d] * kdil[d], tap[d] * kdil[d] + (osz[d] - 1) * strides[d] + 1, strides[d])
                                for d in range(S))
                    acc = acc + w[(o, c) + tap] * xp[(src, c0 + c) + idx]
            out[n, o] = acc
    return out


def conv_torch(x, w, strides, pads, idil, kdil, fg, bg):
    """The same through torch in float64: dilation by zero insertion, padding by F.pad, batch groups by slicing."""
    S = x.ndim - 2
    xp = torch.from_numpy(dilate_pad(x.astype(np.float64), idil, pads))
    wt = torch.from_numpy(w.astype(np.float64))
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[S]
    if bg == 1:
        return fn(xp, wt, stride=tuple(strides), dilation=tuple(kdil), groups=fg).numpy()
    Np, Ob = xp.shape[0] // bg, wt.shape[0] // bg
    parts = [fn(xp[j * Np:(j + 1) * Np], wt[j * Ob:(j + 1) * Ob], stride=tuple(strides), dilation=tuple(kdil))
             for j in range(bg)]
    return torch.cat(parts, dim=1).numpy()


def conv_opts(S, strides, pads, idil, kdil, fg, bg, same=False):
    """Mx.conv's options for a case, leaving out those at their defaults."""
    opts = {}
    if strides != [1] * S:
        opts["strides"] = strides
    if same:
        opts["padding"] = Atom("same")
    elif pads != [(0, 0)] * S:
        opts["padding"] = [tuple(p) for p in pads]
    if idil != [1] * S:
        opts["input_dilation"] = idil
    if kdil != [1] * S:
        opts["kernel_dilation"] = kdil
    if fg != 1:
        opts["feature_group_size"] = fg
    if bg != 1:
        opts["batch_group_size"] = bg
    return opts


def add_conv(cf, rng, t, xs, ws, name, strides=None, pads=None, idil=None, kdil=None, fg=1, bg=1, padding=None,
             x=None, w=None, check=None, extra=None):
    S = len(xs) - 2
    strides, idil, kdil = strides or [1] * S, idil or [1] * S, kdil or [1] * S
    if padding == "same":
        pads = [((k - 1) * d // 2, (k - 1) * d - (k - 1) * d // 2) for k, d in zip(ws[2:], kdil)]
    pads = pads or [(0, 0)] * S
    if x is None:
        x = rng.normal(0, 1, xs).astype(NP[t] if t in ("f32", "f64") else np.float64)
        x = x if t in ("f32", "f64") else np.round(x * 3)
    if w is None:
        w = rng.normal(0, 1, ws).astype(NP["f32"] if t != "f64" else np.float64)
    xf, wf = x.astype(np.float64), w.astype(np.float64)
    ref = conv_loop(xf, wf, strides, pads, idil, kdil, fg, bg, np.longdouble)
    bound = conv_loop(np.abs(xf), np.abs(wf), strides, pads, idil, kdil, fg, bg, np.float64)
    theirs = check() if check else conv_torch(xf, wf, strides, pads, idil, kdil, fg, bg)
    assert theirs.shape == ref.shape, (name, theirs.shape, ref.shape)
    assert np.allclose(theirs, ref.astype(np.float64), rtol=1e-12, atol=1e-12 * max(bound.max(initial=0), 1)), name
    opts = conv_opts(S, strides, pads, idil, kdil, fg, bg, same=padding == "same")
    out_t = t if t in ("f32", "f64") else "f32"
    args = [A(t, x), A("f32" if t != "f64" else "f64", w)]
    expected, aux_bound = ref, bound
    if extra:  # permutations: the arguments and result are transposed views of the canonical case
        args, expected, aux_bound, more = extra(args, ref, bound)
        opts.update(more)
    k = w.shape[1] * int(np.prod(w.shape[2:]))
    cf.add(f"conv {t} {name} {shape_str(xs)} {shape_str(ws)}", "conv", args,
           Arr(out_t, np.ascontiguousarray(expected.astype(NP[out_t]))), opts=KW(**opts),
           aux={"abs_product": Arr("f64", np.ascontiguousarray(aux_bound)), "k": k})


def transpose_kernel(wt, groups):
    """conv_transpose's weight [C_in, O/groups, k...] as Nx.conv's kernel [O, C_in/groups, k...], flipped."""
    cin, og = wt.shape[:2]
    cg = cin // groups
    w = wt.reshape((groups, cg, og) + wt.shape[2:]).swapaxes(1, 2).reshape((groups * og, cg) + wt.shape[2:])
    return np.ascontiguousarray(np.flip(w, axis=tuple(range(2, w.ndim))))


def gen_conv():
    cf = CaseFile("conv", SRC)
    rng = np.random.default_rng(2026)
    for t in ("f32", "f64"):
        add_conv(cf, rng, t, (2, 3, 9), (4, 3, 3), "1d")
        add_conv(cf, rng, t, (2, 3, 9), (4, 3, 3), "1d strides", strides=[2])
        add_conv(cf, rng, t, (2, 3, 9), (4, 3, 3), "1d padding", pads=[(1, 2)])
        add_conv(cf, rng, t, (2, 3, 9), (4, 3, 3), "1d negative padding", pads=[(-1, 1)])
        add_conv(cf, rng, t, (2, 3, 9), (4, 3, 3), "1d kernel dilation", kdil=[2], strides=[2])
        add_conv(cf, rng, t, (2, 3, 5), (4, 3, 3), "1d input dilation", idil=[2], pads=[(1, 0)])
        add_conv(cf, rng, t, (2, 6, 9), (6, 2, 3), "1d feature groups", fg=3)
        add_conv(cf, rng, t, (4, 3, 9), (4, 3, 2), "1d batch groups", bg=2)
        add_conv(cf, rng, t, (2, 4, 7, 6), (6, 2, 3, 2), "2d groups strides padding dilation", fg=2, strides=[2, 1],
                 pads=[(1, 1), (0, 2)], kdil=[1, 2])
        add_conv(cf, rng, t, (1, 3, 5, 5), (2, 3, 3, 3), "2d same", padding="same")
        add_conv(cf, rng, t, (1, 2, 4, 3), (3, 2, 2, 2), "2d input dilation", idil=[2, 3], pads=[(0, 1), (1, 1)])
        add_conv(cf, rng, t, (4, 2, 5, 4), (4, 2, 2, 2), "2d batch groups", bg=2, strides=[1, 2])
        add_conv(cf, rng, t, (1, 2, 4, 5, 3), (3, 2, 2, 3, 2), "3d", strides=[1, 2, 1], pads=[(1, 0), (0, 1), (1, 1)],
                 kdil=[2, 1, 1])
        add_conv(cf, rng, t, (2, 16, 12, 12), (8, 16, 3, 3), "2d larger", pads=[(1, 1), (1, 1)])
        add_conv(cf, rng, t, (2, 5, 4, 4), (3, 5, 1, 1), "2d 1x1")

        # conv_transpose through input dilation, padding (k-1)d - p (+ output_padding) and the flipped kernel
        x = rng.normal(0, 1, (2, 4, 5, 4)).astype(NP[t])
        wt = rng.normal(0, 1, (4, 3, 3, 2)).astype(NP[t])
        st, p, op, dl, g = [2, 1], [1, 0], [1, 0], [1, 2], 2
        k = wt.shape[2:]
        pads = [((k[d] - 1) * dl[d] - p[d], (k[d] - 1) * dl[d] - p[d] + op[d]) for d in range(2)]

        def torch_t2():
            return F.conv_transpose2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(wt.astype(np.float64)),
                                      stride=st, padding=p, output_padding=op, dilation=dl, groups=g).numpy()
        add_conv(cf, rng, t, x.shape, (6, 2, 3, 2), "conv_transpose2d", x=x, w=transpose_kernel(wt, g), idil=st,
                 pads=pads, kdil=dl, fg=g, check=torch_t2)
        x1 = rng.normal(0, 1, (1, 2, 6)).astype(NP[t])
        wt1 = rng.normal(0, 1, (2, 3, 4)).astype(NP[t])

        def torch_t1():
            return F.conv_transpose1d(torch.from_numpy(x1.astype(np.float64)), torch.from_numpy(wt1.astype(np.float64)),
                                      stride=3, padding=2).numpy()
        add_conv(cf, rng, t, x1.shape, (3, 2, 4), "conv_transpose1d", x=x1, w=transpose_kernel(wt1, 1), idil=[3],
                 pads=[(1, 1)])

        # channels-last input and output, kernel stored [kh, kw, C, O]
        def perms(args, ref, bound):
            xa, wa = args
            xl = Arr(xa.t, np.ascontiguousarray(np.moveaxis(xa.a, 1, 3)))
            wl = Arr(wa.t, np.ascontiguousarray(np.transpose(wa.a, (2, 3, 1, 0))))
            to_last = lambda a: np.ascontiguousarray(np.moveaxis(a, 1, 3))  # noqa: E731
            return [xl, wl], to_last(ref), to_last(bound), {"input_permutation": [0, 3, 1, 2],
                                                            "kernel_permutation": [3, 2, 0, 1],
                                                            "output_permutation": [0, 3, 1, 2]}
        add_conv(cf, rng, t, (2, 3, 6, 5), (4, 3, 3, 2), "2d permutations", strides=[1, 2], extra=perms)
    add_conv(cf, rng, "s32", (1, 2, 5), (3, 2, 2), "integer input computes in f32")
    cf.write()


# ---- windows ------------------------------------------------------------------------------


def window_loop(x, op, win, strides, pads, dil):
    """(result as Python numbers, sum |x| per window, count) of Nx.window_<op> on x (a numpy array)."""
    R = x.ndim
    fill = {"sum": 0, "product": 1, "max": -math.inf, "min": math.inf}[op]
    if x.dtype.kind in "iu" and op in ("max", "min"):
        info = np.iinfo(x.dtype)
        fill = info.min if op == "max" else info.max
    xo = x.astype(object)
    widths = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
    xp = np.pad(xo, widths, constant_values=fill)
    xp = xp[tuple(slice(-min(lo, 0), xp.shape[d] - (-min(hi, 0))) for d, (lo, hi) in enumerate(pads))]
    osz = [max(0, (xp.shape[d] - ((win[d] - 1) * dil[d] + 1)) // strides[d] + 1) for d in range(R)]
    out, absum = np.empty(osz, object), np.zeros(osz)
    for o in np.ndindex(*osz):
        vals = [xp[tuple(o[d] * strides[d] + j[d] * dil[d] for d in range(R))] for j in np.ndindex(*win)]
        vals = [float(v) if x.dtype.kind == "f" else int(v) for v in vals]  # no numpy scalars (they overflow)
        absum[o] = math.fsum(abs(float(v)) for v in vals)
        if op == "sum":
            out[o] = math.fsum(vals) if x.dtype.kind == "f" else sum(vals)
        elif op == "product":
            out[o] = float(math.prod(Fraction(v) for v in vals)) if x.dtype.kind == "f" else math.prod(vals)
        else:
            out[o] = (max if op == "max" else min)(vals)
    return out, absum, int(np.prod(win))


def wrap_to(v, t):
    info = np.iinfo(NP[t])
    m = 1 << (8 * np.dtype(NP[t]).itemsize)
    v = int(v) % m
    return v - m if v > info.max else v


def add_window(cf, t, x, op, win, name, strides=None, pads=None, dil=None, same=False):
    R = x.ndim
    strides, dil = strides or [1] * R, dil or [1] * R
    if same:
        pads = [((w - 1) * d // 2, (w - 1) * d - (w - 1) * d // 2) for w, d in zip(win, dil)]
    pads = pads or [(0, 0)] * R
    out, absum, n = window_loop(x, op, win, strides, pads, dil)
    if t in ("f32", "f64"):
        expected = Arr(t, out.astype(np.float64).astype(NP[t]))
    else:
        expected = Arr(t, np.array([wrap_to(v, t) for v in out.ravel()], dtype=NP[t]).reshape(out.shape))
    opts = {}
    if strides != [1] * R:
        opts["strides"] = strides
    if same:
        opts["padding"] = Atom("same")
    elif pads != [(0, 0)] * R:
        opts["padding"] = [tuple(p) for p in pads]
    if dil != [1] * R:
        opts["window_dilations"] = dil
    aux = {"abs_sum": Arr("f64", absum), "n": n} if t in ("f32", "f64") else {}
    cf.add(f"window_{op} {t} {name} {shape_str(x.shape)} window {shape_str(win)}", f"window_{op}",
           [Arr(t, x), tuple(win)], expected, opts=KW(**opts), aux=aux)


def scatter_loop(x, source, init, op, win, strides, pads):
    """Nx.window_scatter_<op>: init plus each window's source value at its last max (min); padding never wins."""
    R = x.ndim
    fill = -math.inf if op == "max" else math.inf
    xp = np.pad(x.astype(np.float64), [(max(lo, 0), max(hi, 0)) for lo, hi in pads], constant_values=fill)
    out = np.zeros(xp.shape, object)
    for o in np.ndindex(*source.shape):
        best, sel = None, None
        for j in np.ndindex(*win):
            pos = tuple(o[d] * strides[d] + j[d] for d in range(R))
            v = xp[pos]
            if best is None or (v >= best if op == "max" else v <= best):
                best, sel = v, pos
        out[sel] += int(source[o])
    out = out[tuple(slice(max(lo, 0), out.shape[d] - max(hi, 0)) for d, (lo, hi) in enumerate(pads))]
    return out + init


def add_scatter(cf, rng, t, x, op, win, name, strides=None, pads=None):
    R = x.ndim
    strides, pads = strides or [1] * R, pads or [(0, 0)] * R
    osz = [(x.shape[d] + pads[d][0] + pads[d][1] - win[d]) // strides[d] + 1 for d in range(R)]
    source = rng.integers(1, 9, osz)
    init = 2
    out = scatter_loop(x, source, init, op, win, strides, pads)
    opts = {}
    if strides != [1] * R:
        opts["strides"] = strides
    if pads != [(0, 0)] * R:
        opts["padding"] = [tuple(p) for p in pads]
    cf.add(f"window_scatter_{op} {t} {name} {shape_str(x.shape)} window {shape_str(win)}", f"window_scatter_{op}",
           [Arr(t, x), A(t, source), A(t, np.array(init)), tuple(win)],
           A(t, np.array(out.tolist(), dtype=np.float64 if t in ("f32", "f64") else np.int64)), opts=KW(**opts))


def gen_window():
    cf = CaseFile("window", SRC)
    rng = np.random.default_rng(77)
    for op in ("sum", "product", "max", "min"):
        for t in ("f32", "f64", "s32", "u8"):
            if t in ("f32", "f64"):
                x = rng.normal(0, 1, (4, 5)).astype(NP[t])
                if op == "product":
                    x = rng.uniform(0.5, 2, (4, 5)).astype(NP[t])
            else:
                x = rng.integers(0 if t == "u8" else -9, 10, (4, 5)).astype(NP[t])
            add_window(cf, t, x, op, [2, 2], "valid")
            add_window(cf, t, x, op, [2, 3], "strides padding", strides=[2, 1], pads=[(1, 0), (1, 2)])
            add_window(cf, t, x, op, [2, 2], "dilation", dil=[2, 1], strides=[1, 2])
            add_window(cf, t, x, op, [3, 2], "same", same=True)
        x3 = rng.normal(0, 1, (3, 4, 5)).astype(np.float32)
        if op == "product":
            x3 = rng.uniform(0.5, 2, (3, 4, 5)).astype(np.float32)
        add_window(cf, "f32", x3, op, [1, 2, 3], "3d negative padding", pads=[(0, 0), (-1, 1), (1, -1)], dil=[1, 1, 2])
    xs = np.array([[7, 2, 5, 3, 10, 2], [3, 8, 9, 3, 4, 2], [1, 5, 7, 5, 6, 1], [0, 6, 2, 7, 2, 8]])
    for op in ("max", "min"):
        for t in ("f32", "f64", "s32"):
            x = xs.astype(NP[t])
            add_scatter(cf, rng, t, x, op, [2, 3], "nx doc", strides=[2, 3])
            add_scatter(cf, rng, t, x, op, [2, 2], "overlapping, ties", strides=[1, 1])
            add_scatter(cf, rng, t, x, op, [2, 2], "padding", strides=[2, 2], pads=[(1, 1), (0, 1)])
        x = rng.normal(0, 1, (3, 4, 5)).astype(np.float32)
        add_scatter(cf, rng, "f32", x, op, [2, 2, 3], "3d", strides=[1, 2, 1], pads=[(0, 1), (1, 0), (1, 1)])
    cf.write()


if __name__ == "__main__":
    gen_conv()
    gen_window()
