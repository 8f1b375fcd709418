#!/usr/bin/python3
"""Writes test/reference/linalg.exs: reference cases for Mx.Linalg from numpy.

Run with Debian's Python (numpy 1.24):
    /usr/bin/python3 test/reference/generate_linalg.py
Every random draw comes from np.random.default_rng with a fixed seed, so the
file is reproducible.

The file is an Elixir list of cases (read with Code.eval_file), in the format
of the other reference files:

    %{name: "solve f32 [4,4] [4,3]", fun: :solve, args: [...], opts: [...],
      expected: {:array, :f32, {4, 3}, "..."}, aux: %{n: 4, cond: 7.3, ...}}

`fun` is the Mx.Linalg function, called as apply(Mx.Linalg, fun, args ++ [opts]).
Arrays are {:array, type, shape, base16 of the raw little-endian bytes}.
`expected` is the result (for eigh/svd/qr, the parts that are unique: the
eigenvalues, the singular values, |R|; the tests check the rest through
A = V diag(w) V^T, A = U S Vt, A = Q R and orthogonality). `aux` holds what
the tolerances need: the order n (and m), the 2-norm condition number `cond`
and the 2-norm `anorm` of the matrices (the largest over a batch).

References are computed in float64 from the inputs as stored (an f32 case's
inputs are rounded to f32 first, then widened exactly), so an f32 result is
compared against the float64 solution of the same f32 problem.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import KW, NP, Arr, Atom, CaseFile  # noqa: E402


# ---- inputs ----------------------------------------------------------------------------

rng = np.random.default_rng(20240611)


def stored(x, t):
    """x as the test will see it: rounded to t, widened back to float64 exactly."""
    return np.asarray(x).astype(NP[t]).astype(np.float64)


def general(shape):
    """Well-conditioned square matrices: Gaussian entries plus a signed multiple of I."""
    a = rng.standard_normal(shape)
    n = shape[-1]
    return a + np.sign(rng.standard_normal(shape[:-1]))[..., None] * np.eye(n) * math.sqrt(n)


def spd(shape):
    m = rng.standard_normal(shape)
    n = shape[-1]
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


def sym(shape):
    m = rng.standard_normal(shape)
    return (m + np.swapaxes(m, -1, -2)) / 2


def mats(x):
    x = np.asarray(x, np.float64)
    return x.reshape((-1,) + x.shape[-2:])


def cond(x):
    return float(max(np.linalg.cond(m) for m in mats(x))) if mats(x).size else 1.0


def anorm(x):
    return float(max(np.linalg.norm(m, 2) for m in mats(x))) if mats(x).size else 0.0


def msolve(a, b):
    """a x = b for matrices b with broadcast batch axes (numpy 1.24 would read some b as vectors)."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return np.linalg.solve(np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:]))


def dims(*shapes):
    return " ".join("[" + ",".join(str(d) for d in s) + "]" for s in shapes)


cases = CaseFile("linalg", source="generate_linalg.py (numpy references)")


def case(name, fun, args, expected, opts=(), aux=None):
    """opts: (key, value) pairs, written as a keyword list."""
    cases.add(name, fun, args, expected, opts=KW(**dict(opts)), aux=aux)


def arr(t, a):
    """a converted to type t (as numpy casts), as an Arr."""
    return Arr(t, np.asarray(a).astype(NP[t]))


def result_type(t):
    return "f32" if t == "s64" else t


# ---- factorizations and solves ---------------------------------------------------------------

for t in ["f32", "f64"]:
    for shape in [(1, 1), (4, 4), (3, 5, 5), (2, 2, 3, 3)]:
        a = stored(spd(shape), t)
        l = np.linalg.cholesky(a)
        # Garbage in the strict upper triangle: cholesky reads the lower one only.
        garbage = a + np.triu(rng.standard_normal(shape) * 100, 1)
        case(f"cholesky {t} {dims(shape)}", "cholesky", [arr(t, garbage)], arr(t, l),
             aux={"n": shape[-1], "cond": cond(a), "anorm": anorm(a)})

    for sa, sb in [((4, 4), (4,)), ((4, 4), (4, 3)), ((3, 5, 5), (3, 5)), ((2, 1, 4, 4), (3, 4, 2)),
                   ((5, 5), (2, 5, 3)), ((1, 1), (1,))]:
        a, b = stored(general(sa), t), stored(rng.standard_normal(sb), t)
        if len(sb) == 1 or sb == sa[:-1]:
            x = np.linalg.solve(a, b[..., None])[..., 0]
        else:
            x = msolve(a, b)
        case(f"solve {t} {dims(sa, sb)}", "solve", [arr(t, a), arr(t, b)], arr(t, x),
             aux={"n": sa[-1], "cond": cond(a), "anorm": anorm(a)})

    for shape in [(4, 4), (3, 3, 3)]:
        a = stored(general(shape), t)
        case(f"inv {t} {dims(shape)}", "inv", [arr(t, a)], arr(t, np.linalg.inv(a)),
             aux={"n": shape[-1], "cond": cond(a), "anorm": anorm(a)})

    # (a shape, b shape, lower, left_side, transform_a, unit_diagonal)
    for sa, sb, lower, left, trans, unit in [((4, 4), (4, 2), True, True, "none", False),
                                            ((4, 4), (4,), False, True, "transpose", False),
                                            ((4, 4), (3, 4), True, False, "none", False),
                                            ((2, 4, 4), (2, 3, 4), False, False, "transpose", True),
                                            ((3, 4, 4), (4, 2), True, True, "transpose", True),
                                            ((3, 5, 5), (3, 5), True, True, "none", False),
                                            ((4, 4), (4,), True, False, "transpose", False)]:
        n = sa[-1]
        full = rng.standard_normal(sa) * 0.5
        full += np.eye(n) * (1.5 + rng.random(sa[:-1])[..., None])  # a diagonal away from zero
        a = stored(full, t)
        b = stored(rng.standard_normal(sb), t)
        tri = np.tril(a) if lower else np.triu(a)
        if unit:
            tri = tri - np.eye(n) * np.diagonal(tri, axis1=-2, axis2=-1)[..., None] + np.eye(n)
        op = np.swapaxes(tri, -1, -2) if trans == "transpose" else tri
        vector = len(sb) == 1 or sb == sa[:-1]
        if left:
            x = np.linalg.solve(op, b[..., None])[..., 0] if vector else msolve(op, b)
        else:  # x op = b  <=>  op^T x^T = b^T
            opt = np.swapaxes(op, -1, -2)
            x = np.linalg.solve(opt, b[..., None])[..., 0] if vector else np.swapaxes(
                msolve(opt, np.swapaxes(b, -1, -2)), -1, -2)
        opts = [("lower", lower), ("left_side", left), ("transform_a", Atom(trans)), ("unit_diagonal", unit)]
        tag = f"{'lower' if lower else 'upper'} {'left' if left else 'right'} {trans}{' unit' if unit else ''}"
        case(f"triangular_solve {t} {dims(sa, sb)} {tag}", "triangular_solve", [arr(t, a), arr(t, b)], arr(t, x),
             opts=opts, aux={"n": n, "cond": cond(tri), "anorm": anorm(tri)})

    for shape in [(4, 4), (3, 5, 5), (6, 6)]:
        a = stored(general(shape), t)
        case(f"det {t} {dims(shape)}", "det", [arr(t, a)], arr(t, np.linalg.det(a)),
             aux={"n": shape[-1], "cond": cond(a), "anorm": anorm(a)})
        s, ld = np.linalg.slogdet(a)
        case(f"slogdet {t} {dims(shape)}", "slogdet", [arr(t, a)], [arr(t, s), arr(t, ld)],
             aux={"n": shape[-1], "cond": cond(a), "anorm": anorm(a)})

    # Exactly singular: the second pivot row minus half the first is exactly zero.
    sing = np.array([[1.0, 2, 3], [2, 4, 6], [1, 0, 1]])
    case(f"det {t} singular [3,3]", "det", [arr(t, sing)], arr(t, 0.0), aux={"n": 3, "cond": 1.0, "anorm": anorm(sing)})
    case(f"slogdet {t} singular [3,3]", "slogdet", [arr(t, sing)], [arr(t, 0.0), arr(t, -np.inf)],
         aux={"n": 3, "cond": 1.0, "anorm": anorm(sing)})
    # A determinant far outside f32's range (about e^300): slogdet still has it.
    big = stored(general((40, 40)) * 300, t)
    s, ld = np.linalg.slogdet(big)
    case(f"slogdet {t} [40,40] det beyond f32", "slogdet", [arr(t, big)], [arr(t, s), arr(t, ld)],
         aux={"n": 40, "cond": cond(big), "anorm": anorm(big)})

    for shape in [(5, 3), (3, 5), (4, 4), (2, 6, 4)]:
        a = stored(rng.standard_normal(shape), t)
        r = np.array([np.linalg.qr(m, mode="reduced")[1] for m in mats(a)]).reshape(
            shape[:-2] + (min(shape[-2:]), shape[-1]))
        case(f"qr {t} {dims(shape)}", "qr", [arr(t, a)], arr(t, np.abs(r)),
             aux={"m": shape[-2], "n": shape[-1], "cond": cond(a), "anorm": anorm(a)})

    for shape, full in [((5, 3), False), ((3, 5), False), ((2, 4, 4), False), ((4, 2), True), ((2, 4), True),
                        ((1, 6), False)]:
        a = stored(rng.standard_normal(shape), t)
        s = np.linalg.svd(a, compute_uv=False)
        opts = [("full_matrices", True)] if full else []
        case(f"svd {t} {dims(shape)}{' full' if full else ''}", "svd", [arr(t, a)], arr(t, s), opts=opts,
             aux={"m": shape[-2], "n": shape[-1], "cond": cond(a), "anorm": anorm(a)})

    for shape in [(5, 3), (2, 4, 4)]:
        a = stored(rng.standard_normal(shape), t)
        case(f"svdvals {t} {dims(shape)}", "svdvals", [arr(t, a)], arr(t, np.linalg.svd(a, compute_uv=False)),
             aux={"m": shape[-2], "n": shape[-1], "cond": cond(a), "anorm": anorm(a)})

    for shape in [(1, 1), (5, 5), (3, 4, 4)]:
        a = stored(sym(shape), t)
        garbage = a + np.triu(rng.standard_normal(shape) * 100, 1)  # numpy's eigh reads the lower triangle too
        w = np.linalg.eigvalsh(garbage)
        assert np.allclose(w, np.linalg.eigvalsh(a))
        case(f"eigh {t} {dims(shape)}", "eigh", [arr(t, garbage)], arr(t, w),
             aux={"n": shape[-1], "anorm": anorm(a)})
        case(f"eigvalsh {t} {dims(shape)}", "eigvalsh", [arr(t, garbage)], arr(t, w),
             aux={"n": shape[-1], "anorm": anorm(a)})

# Integers compute in f32.
ai = np.array([[4, 2, 0], [2, 5, 3], [0, 3, 6]])
case("cholesky s64 [3,3]", "cholesky", [arr("s64", ai)], arr("f32", np.linalg.cholesky(ai.astype(float))),
     aux={"n": 3, "cond": cond(ai), "anorm": anorm(ai)})
case("det s64 [3,3]", "det", [arr("s64", ai)], arr("f32", np.linalg.det(ai.astype(float))),
     aux={"n": 3, "cond": cond(ai), "anorm": anorm(ai)})
case("solve s64 [3,3] [3]", "solve", [arr("s64", ai), arr("s64", np.array([1, 2, 3]))],
     arr("f32", np.linalg.solve(ai.astype(float), np.array([1.0, 2, 3]))),
     aux={"n": 3, "cond": cond(ai), "anorm": anorm(ai)})

# ---- norms, products, diagonals --------------------------------------------------------------------

for t in ["f32", "f64"]:
    v = stored(rng.standard_normal(7), t)
    v[3] = 0.0  # for ord 0
    for ord in [None, 1, 2, np.inf, -np.inf, 0, 3, 0.5]:
        opts = [] if ord is None else [("ord", float(ord) if ord in (0.5, np.inf, -np.inf) else ord)]
        case(f"norm {t} [7] ord {ord}", "norm", [arr(t, v)], arr(t, np.linalg.norm(v, ord)), opts=opts,
             aux={"n": 7, "anorm": float(np.abs(v).max())})
    m = stored(rng.standard_normal((4, 5)), t)
    for ord in [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]:
        opts = [] if ord is None else [("ord", Atom(ord) if isinstance(ord, str) else float(ord) if abs(ord) == np.inf
                                        else ord)]
        case(f"norm {t} [4,5] ord {ord}", "norm", [arr(t, m)], arr(t, np.linalg.norm(m, ord)), opts=opts,
             aux={"m": 4, "n": 5, "anorm": anorm(m)})
    x = stored(rng.standard_normal((2, 3, 4)), t)
    for ord, axes, keep in [(None, None, False), (None, [2], False), (1, [-1], True), (np.inf, [0], False),
                            ("fro", [0, 2], False), (1, [2, 0], True), (2, [0, 2], False), ("nuc", [1, 2], True)]:
        opts = []
        if ord is not None:
            opts.append(("ord", Atom(ord) if isinstance(ord, str) else float(ord) if ord == np.inf else ord))
        if axes is not None:
            opts.append(("axes", axes))
        if keep:
            opts.append(("keep_axes", True))
        want = np.linalg.norm(x, ord, axis=None if axes is None else tuple(axes), keepdims=keep)
        if axes is not None and len(axes) == 2:
            sub = np.moveaxis(x, axes, (-2, -1))
            aux = {"m": sub.shape[-2], "n": sub.shape[-1], "anorm": anorm(sub)}
        else:
            aux = {"n": x.size if axes is None else x.shape[axes[0]], "anorm": float(np.abs(x).max())}
        case(f"norm {t} [2,3,4] ord {ord} axes {axes}{' keep' if keep else ''}", "norm", [arr(t, x)], arr(t, want),
             opts=opts, aux=aux)

    for sa, sb, axis in [((3,), (3,), -1), ((4, 3), (3,), -1), ((3, 4), (3, 4), 0), ((2, 1, 3), (5, 3), -1)]:
        a, b = stored(rng.standard_normal(sa), t), stored(rng.standard_normal(sb), t)
        opts = [] if axis == -1 else [("axis", axis)]
        want = np.cross(a, b, axis=axis)
        case(f"cross {t} {dims(sa, sb)} axis {axis}", "cross", [arr(t, a), arr(t, b)], arr(t, want), opts=opts,
             aux={"scale": float(np.abs(a).max() * np.abs(b).max())})

    for sa, sb in [((3,), (4,)), ((2, 2), (3,))]:
        a, b = stored(rng.standard_normal(sa), t), stored(rng.standard_normal(sb), t)
        # Each element is one product, correctly rounded in the dtype as numpy computes it.
        want = np.outer(a.astype(NP[t]), b.astype(NP[t]))
        case(f"outer {t} {dims(sa, sb)}", "outer", [arr(t, a), arr(t, b)], arr(t, want))

    for shape, offset in [((4, 5), 0), ((4, 5), 1), ((4, 5), -2), ((2, 3, 3), 0), ((3, 3), 5)]:
        a = stored(rng.standard_normal(shape), t)
        opts = [] if offset == 0 else [("offset", offset)]
        want = np.trace(a, offset, axis1=-2, axis2=-1)
        d = np.abs(np.diagonal(a, offset, axis1=-2, axis2=-1))
        case(f"trace {t} {dims(shape)} offset {offset}", "trace", [arr(t, a)], arr(t, want), opts=opts,
             aux={"n": d.shape[-1], "abs_sum": float(d.sum(axis=-1).max()) if d.size else 0.0})
        case(f"diagonal {t} {dims(shape)} offset {offset}", "diagonal", [arr(t, a)],
             arr(t, np.diagonal(a, offset, axis1=-2, axis2=-1)), opts=opts)

    for shape, offset in [((4,), 0), ((4,), 1), ((4,), -2), ((2, 3), 1), ((0,), 2)]:
        v = stored(rng.standard_normal(shape), t)
        rows = v.reshape((int(np.prod(shape[:-1])), shape[-1]))
        want = np.array([np.diag(r, offset) for r in rows]).reshape(
            shape[:-1] + (shape[-1] + abs(offset),) * 2)
        opts = [] if offset == 0 else [("offset", offset)]
        case(f"diag {t} {dims(shape)} offset {offset}", "diag", [arr(t, v)], arr(t, want), opts=opts)

ai = np.arange(12).reshape(3, 4)
case("trace s64 [3,4]", "trace", [arr("s64", ai)], arr("s64", np.trace(ai)))
case("diagonal s64 [3,4] offset 1", "diagonal", [arr("s64", ai)], arr("s64", np.diagonal(ai, 1)),
     opts=[("offset", 1)])
case("diag s64 [3] offset -1", "diag", [arr("s64", np.array([1, 2, 3]))], arr("s64", np.diag([1, 2, 3], -1)),
     opts=[("offset", -1)])
case("cross s64 [3] [3]", "cross", [arr("s64", np.array([1, 2, 3])), arr("s64", np.array([4, 5, 6]))],
     arr("s64", np.cross([1, 2, 3], [4, 5, 6])), aux={"scale": 18.0})
case("outer s64 [2] [3]", "outer", [arr("s64", np.array([1, 2])), arr("s64", np.array([3, 4, 5]))],
     arr("s64", np.outer([1, 2], [3, 4, 5])))

cases.write()
