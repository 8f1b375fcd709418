#!/usr/bin/python3
"""Writes test/reference/everyday.exs: reference cases for Mx's everyday functions
(asinh, acosh, atanh, log2, log10 against mpmath; softmax, log_softmax, var, std,
topk, split, tile, roll, tensordot, einsum, cumulative scans against numpy/scipy)
and the Mx.Linalg additions (lu against scipy, eig/eigvals, pinv and complete QR
against numpy).

Run with Debian's Python (numpy 1.24, scipy 1.10, mpmath 1.2):
    /usr/bin/python3 test/reference/generate_everyday.py
Every random draw comes from np.random.default_rng with a fixed seed.

Cases follow the other reference files (see refdata.py); `module` names the
Elixir module when it is not Mx. Results that are tuples or lists (topk, split,
lu, eig, qr) are written as lists of arrays under `expected`; `aux` holds what
the tolerances in test/mx/everyday_test.exs need, computed here in float64
from the inputs as stored.
"""
import math
import os
import sys

import mpmath as mp
import numpy as np
import scipy.linalg as sl
import scipy.special as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import KW, NP, Arr, Atom, CaseFile  # noqa: E402

mp.mp.prec = 256
np.seterr(all="ignore")
NP["c64"], NP["c128"] = np.complex64, np.complex128
rng = np.random.default_rng(20261206)
NAN, INF = float("nan"), float("inf")


def stored(x, t):
    return np.asarray(x, np.float64).astype(NP[t])


def arr(x, t):
    return Arr(t, stored(x, t))


def f64(a):
    return a.a.astype(np.float64)


class Cases(CaseFile):
    def add_mod(self, module, name, fun, args, expected, opts=None, aux=None):
        self.add(name, fun, args, expected, opts, aux)
        self.cases[-1]["module"] = Atom(f"\"Elixir.{module}\"")


cf = Cases("everyday", "generate_everyday.py (numpy/scipy/mpmath references)")

# ---- unary rows: the exact value rounded once -----------------------------------------------

SPECIAL = [0.0, -0.0, NAN, INF, -INF]
UNARY = {
    "asinh": (mp.asinh, np.arcsinh,
              SPECIAL + [1e-30, -1e-10, 1e-5, 0.5, -1.0, 1.0, 2.0, 10.0, -1e5, 1e10, 1e19, 3e38, 1e300]),
    "acosh": (mp.acosh, np.arccosh,
              SPECIAL + [1.0, 1.0000001, 1 + 2**-52, 1.5, 2.0, 10.0, 1e5, 1e10, 1e19, 3e38, 1e300, 0.5, -2.0]),
    "atanh": (mp.atanh, np.arctanh,
              SPECIAL + [1e-30, -1e-10, 1e-5, 0.5, -0.5, 0.9, 0.99999, -0.99999, 1 - 2**-24, 1.0, -1.0, 1.5]),
    "log2": (lambda x: mp.log(x, 2), np.log2,
             SPECIAL + [1.0, 2.0, 8.0, 0.5, 2.0**-149, 2.0**100, 3.0, 10.0, 1e-30, 1e30, -1.0, 1 + 2**-23, 5e-324]),
    "log10": (mp.log10, np.log10,
              SPECIAL + [1.0, 10.0, 1000.0, 0.01, 1e-30, 1e30, 2.0, 3.0, -1.0, 1 + 2**-23, 1e300, 5e-324]),
}
for op, (mfun, nfun, base) in UNARY.items():
    lo, hi = {"acosh": (1, 50), "atanh": (-1, 1)}.get(op, (-20, 20) if op == "asinh" else (0, 100))
    values = base + list(rng.uniform(lo, hi, 30))
    for t in ["f32", "f64"]:
        x = stored(values, t).astype(np.float64)
        theirs = nfun(x)
        out = theirs.copy()
        for i, v in enumerate(x):
            if math.isfinite(v) and v != 0 and math.isfinite(theirs[i]):
                out[i] = float(mfun(mp.mpf(float(v))))
        cf.add(f"{op} {t}", op, [Arr(t, x.astype(NP[t]))], Arr(t, out.astype(NP[t])))

# ---- softmax, log_softmax ---------------------------------------------------------------------

for t, shape, axis, scale in [("f32", (3, 5), -1, 3.0), ("f64", (4, 6), 0, 30.0), ("f32", (2, 3, 4), 1, 100.0),
                              ("f64", (7,), -1, 1e3)]:
    x = stored(rng.normal(0, scale, shape), t)
    x64 = x.astype(np.float64)
    sm = sp.softmax(x64, axis=axis)
    lsm = sp.log_softmax(x64, axis=axis)
    spread = np.max(x64, axis=axis, keepdims=True) - np.min(x64, axis=axis, keepdims=True)
    aux = {"n": shape[axis], "spread": Arr("f64", np.broadcast_to(spread, shape).copy())}
    cf.add(f"softmax {t} {list(shape)} axis {axis}", "softmax", [Arr(t, x)], Arr(t, sm.astype(NP[t])),
           KW(axis=axis), aux)
    cf.add(f"log_softmax {t} {list(shape)} axis {axis}", "log_softmax", [Arr(t, x)], Arr(t, lsm.astype(NP[t])),
           KW(axis=axis), aux)

# ---- var, std ------------------------------------------------------------------------------------

for t, shape, axes, ddof, keep in [("f32", (5, 4), [1], 0, False), ("f64", (3, 6), [0], 1, True),
                                   ("f32", (2, 3, 4), [0, 2], 1, False), ("f64", (10,), None, 0, False),
                                   ("f32", (8,), None, 1, False)]:
    x = stored(rng.normal(3.0, 2.0, shape), t)
    x64 = x.astype(np.float64)
    ax = None if axes is None else tuple(axes)
    v = np.var(x64, axis=ax, ddof=ddof, keepdims=keep)
    s = np.std(x64, axis=ax, ddof=ddof, keepdims=keep)
    n = x64.size if axes is None else int(np.prod([shape[a] for a in axes]))
    d = x64 - np.mean(x64, axis=ax, keepdims=True)
    aux = {"n": n, "ddof": ddof, "abs_sum": Arr("f64", np.asarray(np.sum(np.abs(x64), axis=ax, keepdims=keep))),
           "sq_sum": Arr("f64", np.asarray(np.sum(d * d, axis=ax, keepdims=keep)))}
    opts = KW(axes=axes, ddof=ddof, keep_axes=keep) if axes is not None else KW(ddof=ddof, keep_axes=keep)
    cf.add(f"var {t} {list(shape)} axes {axes} ddof {ddof}", "var", [Arr(t, x)], Arr(t, np.asarray(v).astype(NP[t])),
           opts, aux)
    cf.add(f"std {t} {list(shape)} axes {axes} ddof {ddof}", "std", [Arr(t, x)], Arr(t, np.asarray(s).astype(NP[t])),
           opts, aux)

# ---- topk (numpy's stable argsort of -a: ties keep the lower index first) -------------------------

for t, shape, k, axis in [("f32", (3, 6), 3, -1), ("s64", (4, 5), 2, 0), ("f64", (10,), 10, -1), ("s32", (2, 7), 0, 1)]:
    if t.startswith("s"):
        x = rng.integers(-5, 5, shape).astype(NP[t])  # many ties
    else:
        x = stored(np.round(rng.normal(0, 2, shape), 1), t)
    idx = np.argsort(-x.astype(np.float64), axis=axis, kind="stable")
    idx = np.take(idx, range(k), axis=axis)
    vals = np.take_along_axis(x, idx, axis=axis)
    cf.add(f"topk {t} {list(shape)} k {k} axis {axis}", "topk", [Arr(t, x), k], [Arr(t, vals), Arr("s64", idx.astype(np.int64))],
           KW(axis=axis))

# ---- split, tile, roll: values move, bit for bit ------------------------------------------------------

x = rng.integers(-100, 100, (6, 4)).astype(np.int64)
for parts, axis in [(3, 0), (2, 1), ([1, 4], 0), ([0, 2, 9], 1)]:
    got = np.split(x, parts, axis=axis)
    cf.add(f"split s64 [6,4] {parts} axis {axis}", "split", [Arr("s64", x), parts], [Arr("s64", np.ascontiguousarray(g)) for g in got],
           KW(axis=axis))
xf = stored(rng.normal(0, 1, (2, 3)), "f32")
for reps in [[2], [2, 3], [3, 1, 2], [1, 0]]:
    cf.add(f"tile f32 [2,3] {reps}", "tile", [Arr("f32", xf), reps], Arr("f32", np.tile(xf, reps)))
xr = rng.integers(0, 1000, (3, 5)).astype(np.int32)
for shift, axis in [(2, None), (-7, None), (1, 0), (-2, 1), (13, 1), ([1, -2], [0, 1])]:
    opts = KW(axis=axis) if axis is not None else KW()
    cf.add(f"roll s32 [3,5] {shift} axis {axis}", "roll", [Arr("s32", xr), shift], Arr("s32", np.roll(xr, shift, axis=axis)), opts)

# ---- tensordot and einsum: sums of products --------------------------------------------------------


def abs_product(sub, ops):
    return np.einsum(sub, *[np.abs(o) for o in ops])


for t, sa, sb, axes in [("f32", (3, 4, 5), (4, 5, 2), 2), ("f64", (2, 3), (3, 4), 1), ("f32", (4, 3, 2), (2, 4), ([0, 2], [1, 0])),
                        ("f64", (3,), (5,), 0)]:
    a = stored(rng.normal(0, 1, sa), t)
    b = stored(rng.normal(0, 1, sb), t)
    r = np.tensordot(a.astype(np.float64), b.astype(np.float64), axes=axes)
    ab = np.tensordot(np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64)), axes=axes)
    axes_ex = axes if isinstance(axes, int) else tuple(axes)
    k = int(np.prod([sa[i] for i in axes[0]])) if not isinstance(axes, int) else int(np.prod(sa[len(sa) - axes:]))
    cf.add(f"tensordot {t} {list(sa)} {list(sb)} {axes}", "tensordot", [Arr(t, a), Arr(t, b), axes_ex],
           Arr(t, np.asarray(r).astype(NP[t])), None, {"k": k, "abs_product": Arr("f64", np.asarray(ab))})

EINSUM = [("ij,jk->ik", [(3, 4), (4, 2)]), ("ij,jk", [(2, 3), (3, 2)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
          ("ii->i", [(4, 4)]), ("ii", [(3, 3)]), ("ij->", [(3, 5)]), ("ij->ji", [(2, 5)]), ("i,j->ij", [(3,), (4,)]),
          ("i,i->", [(6,), (6,)]), ("ijk,ikl,lm->jm", [(2, 3, 4), (2, 4, 5), (5, 3)]), ("abc->cab", [(2, 3, 4)]),
          ("ij,kj,k->i", [(3, 4), (5, 4), (5,)]), ("iij->j", [(3, 3, 2)]), ("ab,ab->ab", [(2, 3), (2, 3)])]
for i, (sub, shapes) in enumerate(EINSUM):
    t = "f32" if i % 2 == 0 else "f64"
    ops = [stored(rng.normal(0, 1, s), t) for s in shapes]
    o64 = [o.astype(np.float64) for o in ops]
    r = np.einsum(sub, *o64)
    ab = abs_product(sub, o64)
    # the number of terms summed per output: product of the sizes of the summed letters
    letters = {c: d for s, sh in zip(sub.split("->")[0].split(","), shapes) for c, d in zip(s, sh)}
    out = sub.split("->")[1] if "->" in sub else "".join(sorted(c for c in letters if sub.count(c) == 1))
    k = int(np.prod([d for c, d in letters.items() if c not in out]))
    cf.add(f"einsum {t} {sub}", "einsum", [sub, [Arr(t, o) for o in ops]], Arr(t, np.asarray(r).astype(NP[t])), None,
           {"k": max(k, 1), "abs_product": Arr("f64", np.asarray(ab)), "operands": len(ops)})

# `...`: broadcasting leading axes; k (terms per output) by hand: the letters summed
ELLIPSIS = [("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)], 4), ("...ij,jk", [(3, 2, 4), (4, 5)], 4),
            ("i...->...i", [(3, 2, 4)], 1), ("...ii->...i", [(2, 3, 3)], 1),
            ("a...,a...->...", [(4, 3), (4, 1)], 4)]
for i, (sub, shapes, k) in enumerate(ELLIPSIS):
    t = "f64" if i % 2 == 0 else "f32"
    ops = [stored(rng.normal(0, 1, sh), t) for sh in shapes]
    o64 = [o.astype(np.float64) for o in ops]
    r = np.einsum(sub, *o64)
    cf.add(f"einsum {t} {sub}", "einsum", [sub, [Arr(t, o) for o in ops]], Arr(t, np.asarray(r).astype(NP[t])), None,
           {"k": k, "abs_product": Arr("f64", np.asarray(abs_product(sub, o64))), "operands": len(ops)})

# ---- associative_scan: cumulative sum and max ---------------------------------------------------------

for t, shape, axis in [("f64", (37,), 0), ("f32", (4, 9), 1), ("f32", (16, 3), 0), ("f64", (1,), 0)]:
    x = stored(rng.normal(0, 1, shape), t)
    x64 = x.astype(np.float64)
    cs = np.cumsum(x64, axis=axis)
    cf.add(f"associative_scan add {t} {list(shape)} axis {axis}", "associative_scan", [Atom("add"), Arr(t, x)],
           Arr(t, cs.astype(NP[t])), KW(axis=axis), {"n": shape[axis], "abs_scan": Arr("f64", np.cumsum(np.abs(x64), axis=axis))})
    cf.add(f"associative_scan max {t} {list(shape)} axis {axis}", "associative_scan", [Atom("max"), Arr(t, x)],
           Arr(t, np.maximum.accumulate(x, axis=axis)), KW(axis=axis))

# ---- linalg: lu, eig, eigvals, pinv, complete QR -------------------------------------------------------


def general(shape):
    a = rng.standard_normal(shape)
    n = shape[-1]
    return a + np.sign(rng.standard_normal(shape[:-1]))[..., None] * np.eye(n) * math.sqrt(n)


for t, shape in [("f32", (4, 4)), ("f64", (6, 6)), ("f64", (3, 5, 5)), ("f32", (1, 1))]:
    a = stored(general(shape), t)
    a64 = a.astype(np.float64)
    ps, ls, us = [], [], []
    for m in a64.reshape((-1,) + shape[-2:]):
        p, l, u = sl.lu(m)
        ps.append(p), ls.append(l), us.append(u)
    rs = lambda xs: np.array(xs).reshape(shape)  # noqa: E731
    cf.add_mod("Mx.Linalg", f"lu {t} {list(shape)}", "lu", [Arr(t, a)],
               [Arr(t, rs(ps).astype(NP[t])), Arr(t, rs(ls).astype(NP[t])), Arr(t, rs(us).astype(NP[t]))], None,
               {"n": shape[-1], "anorm": float(max(np.linalg.norm(m, 2) for m in a64.reshape((-1,) + shape[-2:])))})

# complex LU (cgetrf/zgetrf; scipy's lu calls the same LAPACK routine, pivoting on |re| + |im|)
for t, shape in [("c64", (4, 4)), ("c128", (2, 3, 3))]:
    a = (general(shape) + 1j * rng.standard_normal(shape)).astype(NP[t])
    a128 = a.astype(np.complex128)
    ps, ls, us = [], [], []
    for m in a128.reshape((-1,) + shape[-2:]):
        p, l, u = sl.lu(m)
        ps.append(p), ls.append(l), us.append(u)
    rs = lambda xs: np.array(xs).reshape(shape)  # noqa: E731
    cf.add_mod("Mx.Linalg", f"lu {t} {list(shape)}", "lu", [Arr(t, a)],
               [Arr(t, rs(ps).astype(NP[t])), Arr(t, rs(ls).astype(NP[t])), Arr(t, rs(us).astype(NP[t]))], None,
               {"n": shape[-1], "anorm": float(max(np.linalg.norm(m, 2) for m in a128.reshape((-1,) + shape[-2:])))})

CT = {"f32": "c64", "f64": "c128"}
for t, shape, kind in [("f64", (4, 4), "real"), ("f32", (5, 5), "complex"), ("f64", (2, 3, 3), "complex"), ("f64", (6, 6), "mixed")]:
    n = shape[-1]
    ms = []
    for _ in range(int(np.prod(shape[:-2]))):
        # A = S D S^-1 with a well-conditioned S: eigenvalues known to Bauer-Fike's bound.
        s = np.eye(n) + 0.3 * rng.standard_normal((n, n))
        if kind == "real":
            d = np.diag(rng.uniform(-3, 3, n))
        else:
            d = np.zeros((n, n))
            i = 0
            while i < n:
                if i + 1 < n and (kind == "complex" or i % 4 == 0):
                    a_, b_ = rng.uniform(-2, 2), rng.uniform(0.5, 2)
                    d[i:i + 2, i:i + 2] = [[a_, b_], [-b_, a_]]
                    i += 2
                else:
                    d[i, i] = rng.uniform(-3, 3)
                    i += 1
        ms.append(s @ d @ np.linalg.inv(s))
    a = stored(np.array(ms).reshape(shape), t)
    a64 = a.astype(np.float64)
    flat = a64.reshape((-1, n, n))
    w = np.array([np.linalg.eigvals(m) for m in flat]).reshape(shape[:-1])
    # Bauer-Fike: |dλ| <= κ(V) ||dA||; κ(V) of numpy's (unit-column) eigenvectors, per batch.
    kv = max(np.linalg.cond(np.linalg.eig(m)[1]) for m in flat)
    anorm = max(np.linalg.norm(m, 2) for m in flat)
    aux = {"n": n, "anorm": float(anorm), "kappa_v": float(kv)}
    cf.add_mod("Mx.Linalg", f"eig {t} {list(shape)} {kind}", "eig", [Arr(t, a)], [Arr(CT[t], w.astype(NP[CT[t]]))], None, aux)
    cf.add_mod("Mx.Linalg", f"eigvals {t} {list(shape)} {kind}", "eigvals", [Arr(t, a)],
               Arr(CT[t], w.astype(NP[CT[t]])), None, aux)

for t, shape, rank in [("f64", (4, 3), 3), ("f32", (3, 5), 3), ("f64", (5, 4), 2), ("f32", (2, 4, 3), 3)]:
    if rank == min(shape[-2:]):
        a = stored(rng.standard_normal(shape), t)
    else:
        a = stored(rng.standard_normal(shape[:-1] + (rank,)) @ rng.standard_normal((rank, shape[-1])), t)
    a64 = a.astype(np.float64)
    flat = a64.reshape((-1,) + shape[-2:])
    m, n = shape[-2:]
    eps = np.finfo(NP[t]).eps
    # full rank: the default cutoff max(m, n) eps; rank-deficient: rtol 1e-6, far above the rounding
    # noise (~ u max(s)) of the singular values that are zero in exact arithmetic
    full = rank == min(m, n)
    rt = max(m, n) * eps if full else 1e-6
    pv = np.array([np.linalg.pinv(x, rcond=rt) for x in flat]).reshape(shape[:-2] + (n, m))
    sv = [np.linalg.svd(x, compute_uv=False) for x in flat]
    # condition number of the part pinv inverts (singular values above the cutoff)
    kappa = max(s[0] / s[s > rt * s[0]][-1] for s in sv)
    cf.add_mod("Mx.Linalg", f"pinv {t} {list(shape)} rank {rank}", "pinv", [Arr(t, a)], Arr(t, pv.astype(NP[t])), None if full else KW(rtol=1e-6),
               {"m": m, "n": n, "cond": float(kappa), "anorm": float(max(s[0] for s in sv))})

for t, shape in [("f64", (5, 3)), ("f32", (3, 5)), ("f32", (4, 4)), ("f64", (2, 6, 2))]:
    a = stored(rng.standard_normal(shape), t)
    a64 = a.astype(np.float64)
    r = np.array([np.linalg.qr(x, mode="complete")[1] for x in a64.reshape((-1,) + shape[-2:])]).reshape(shape)
    m, n = shape[-2:]
    cf.add_mod("Mx.Linalg", f"qr complete {t} {list(shape)}", "qr", [Arr(t, a)], [Arr(t, np.abs(r).astype(NP[t]))], KW(mode=Atom("complete")),
               {"m": m, "n": n, "anorm": float(max(np.linalg.norm(x, 2) for x in a64.reshape((-1,) + shape[-2:]))),
                "cond": float(max(np.linalg.cond(x) for x in a64.reshape((-1,) + shape[-2:])))})

cf.write()
print(f"wrote {len(cf.cases)} cases")
