#!/usr/bin/python3
"""Writes the reference cases in test/reference/*.exs from numpy and scipy.

Run with Debian's Python (numpy 1.24, scipy 1.10, mpmath): `make reference`,
or /usr/bin/python3 test/reference/generate.py. Every random draw comes from
np.random.default_rng(seed) with a fixed seed, so the files are reproducible.

Each file is an Elixir list of cases (read with Code.eval_file) of the form

    %{name: "add f32 [3,4] [4]", fun: :add, args: [...], opts: [...],
      expected: {:array, :f32, {3, 4}, "0000803F..."}, aux: %{...}}

`fun` is the public Mx function called as apply(Mx, fun, args ++ [opts]).
Arrays are {:array, type, shape, base16 of the raw little-endian bytes}, so
no value goes through decimal text. `aux` holds the data the tolerance of a
float result needs (e.g. sums of |x| for error bounds of sums); the
tolerances themselves are chosen and justified in test/support/reference_case.ex.

Where references come from:
  * IEEE-exact ops (+ - * /, sqrt, fmod, floor, max, conversions, moves) are
    computed by numpy in the array's own dtype: both sides are correctly
    rounded, so they agree bit for bit.
  * Transcendental functions: the exact value (mpmath, 200 bits) rounded to
    float64, then to float32 for f32 cases. Not numpy's float32 functions:
    on this AVX-512 machine they are off by up to 2 ulp, and numpy's or
    scipy's float64 ones by up to 2 ulp (8 for gammaln, hundreds for
    gammaln/psi at negative x), which would blur the bounds. Each value is
    cross-checked against the numpy/scipy float64 result (see `crosscheck`).
    Non-finite inputs, zeros and domain errors take numpy/scipy's IEEE
    special values.
  * Sums, means and products of floats are exact (math.fsum, Fraction), then
    rounded; logsumexp is mpmath's, cross-checked against scipy's.
  * bf16 (which numpy lacks) and f16 are rounded to nearest even by
    `round_fmt` from the exact value; f16 is checked against numpy's float16.
"""
import math
import os
import sys
from fractions import Fraction

import mpmath as mp
import numpy as np
import scipy.special as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refdata  # noqa: E402
# OUT and the classes are also taken from here by generate_special.py and generate_complex.py.
from refdata import KW, NP, OUT, Arr, Atom, CaseFile  # noqa: E402,F401

mp.mp.prec = 200
np.seterr(all="ignore")
INF, NAN = math.inf, math.nan

# ---- Elixir terms -----------------------------------------------------------------


def ex(v):
    """v as Elixir source. Parts go through this module's ex, so a generator that
    replaces generate.ex (as generate_complex.py does) also writes nested terms."""
    return refdata.ex(v, ex)


# ---- dtypes and arrays ----------------------------------------------------------------

FLOATS = ("f16", "bf16", "f32", "f64")
# (mantissa bits, min normal exponent, max exponent) of the small float formats
FMT = {"f16": (10, -14, 15), "bf16": (7, -126, 127), "f32": (23, -126, 127)}


def bits_of(t):
    return 16 if t == "bf16" else np.dtype(NP[t]).itemsize * 8


def int_range(t):
    info = np.iinfo(NP[t])
    return int(info.min), int(info.max)


def wrap(v, t):
    """An integer reduced modulo 2^bits into t's range (numpy's and C's wrap)."""
    lo, hi = int_range(t)
    m = 1 << bits_of(t)
    v %= m
    return v - m if v > hi else v


def round_fmt(v, t):
    """v (an exact int, float or Fraction, finite) rounded to nearest even in
    format t (f16, bf16 or f32), with gradual underflow and overflow to inf."""
    mbits, emin, emax = FMT[t]
    if v == 0:
        return math.copysign(0.0, v) if isinstance(v, float) else 0.0
    f = Fraction(v)
    s = -1.0 if f < 0 else 1.0
    f = abs(f)
    e = f.numerator.bit_length() - f.denominator.bit_length()
    if Fraction(2) ** e > f:
        e -= 1
    q = Fraction(2) ** (max(e, emin) - mbits)
    r = round(f / q) * q  # Fraction rounding is half to even
    return s * INF if r >= Fraction(2) ** (emax + 1) else s * float(r)


def to_small(values, t):
    """Float64 values rounded to f16/bf16 (NaN and inf kept) as an Arr."""
    flat = np.asarray(values, np.float64).ravel()
    out = [x if not math.isfinite(x) else round_fmt(float(x), t) for x in flat]
    f32 = np.array(out, np.float32).reshape(np.shape(values))
    if t == "bf16":
        return Arr(t, (f32.view(np.uint32) >> 16).astype(np.uint16))
    r = f32.astype(np.float16)  # exact: the values are already f16 values
    return Arr(t, r)


def A(t, values, shape=None):
    """An Arr of type t from Python/numpy values (ints wrap, floats round once)."""
    if t in ("f16", "bf16"):
        arr = to_small(np.asarray(values, np.float64), t)
    elif t in ("f32", "f64"):
        arr = Arr(t, np.asarray(values, np.float64).astype(NP[t]))
    elif t == "bool":
        arr = Arr(t, np.asarray(values).astype(np.bool_))
    else:
        vals = np.asarray(values, dtype=object)
        flat = [wrap(int(v), t) for v in vals.ravel()]
        arr = Arr(t, np.array(flat, dtype=NP[t]).reshape(vals.shape))
    if shape is not None:
        arr.a = arr.a.reshape(shape)
    return arr


def from_f64(values, t):
    """Float64 results (exact values rounded once to f64) stored as type t."""
    values = np.asarray(values, np.float64)
    if t == "f64":
        return Arr(t, values)
    if t == "f32":
        return Arr(t, values.astype(np.float32))
    return to_small(values, t)


def C(x):
    """A C-contiguous copy that keeps rank 0 (np.ascontiguousarray makes it rank 1)."""
    return np.array(x, order="C", copy=True)


def shape_str(s):
    return "[" + ",".join(str(d) for d in s) + "]"


# ---- exact references for transcendental functions ------------------------------------

WARNINGS = []


def crosscheck(name, x, truth, theirs, scale=None):
    """Notes where numpy/scipy's float64 result is more than 16 ulp (of
    max(|truth|, scale)) from the exact value: a guard on the mpmath mapping."""
    for i in range(truth.size):
        t, n = truth.flat[i], theirs.flat[i]
        if math.isnan(t) and math.isnan(n) or t == n:
            continue
        mag = max(abs(t), scale.flat[i] if scale is not None else 0.0)
        if not (math.isfinite(t) and math.isfinite(n)) or abs(t - n) > 16 * math.ulp(mag):
            WARNINGS.append(f"{name}({x.flat[i]!r}): exact {t!r}, numpy/scipy {n!r}")


def exact_unary(name, mfun, nfun, x64, scale=None):
    """mfun evaluated exactly at each finite nonzero x where numpy/scipy's float64
    result nfun(x) is finite; numpy/scipy's IEEE special values elsewhere."""
    theirs = np.asarray(nfun(x64), np.float64)
    out = theirs.copy()
    for i, x in enumerate(x64.flat):
        if math.isfinite(x) and x != 0 and math.isfinite(theirs.flat[i]):
            v = mfun(mp.mpf(float(x)))
            if isinstance(v, mp.mpf):
                out.flat[i] = float(v)
    crosscheck(name, x64, out, theirs, scale)
    return out


def exact_binary(name, mfun, nfun, a64, b64, scale=None):
    """As exact_unary for two broadcast inputs; a zero first input keeps numpy's
    value (mpmath has no signed zero, and atan2(+-0, x) depends on the sign)."""
    a64, b64 = np.broadcast_arrays(a64, b64)
    theirs = np.asarray(nfun(a64, b64), np.float64)
    out = theirs.copy()
    for i in range(out.size):
        a, b = float(a64.flat[i]), float(b64.flat[i])
        if math.isfinite(a) and math.isfinite(b) and a != 0 and math.isfinite(theirs.flat[i]):
            v = mfun(mp.mpf(a), mp.mpf(b))
            if isinstance(v, mp.mpf):
                out.flat[i] = float(v)
    crosscheck(name, a64, out, theirs, None if scale is None else np.broadcast_to(scale, out.shape))
    return out


def lgamma_scale(x):
    """Magnitudes of the terms of the reflection formula at x < 0, where
    log|G(x)| = log(pi / |sin(pi x)|) - log|G(1 - x)| cancels near its zeros."""
    if not (math.isfinite(x) and x < 0) or x == math.floor(x):
        return 0.0
    t1 = mp.log(mp.pi / abs(mp.sinpi(mp.mpf(x))))
    t2 = mp.re(mp.loggamma(1 - mp.mpf(x)))
    return float(abs(t1) + abs(t2))


def digamma_scale(x):
    """Magnitudes of the terms of psi(x) = psi(1 - x) - pi / tan(pi x) for x < 0
    and psi(x) = psi(x + 1) - 1 / x for 0 < x < 1, which cancel near the zeros."""
    if not math.isfinite(x) or x == 0 or x >= 1 or (x < 0 and x == math.floor(x)):
        return 0.0
    X = mp.mpf(x)
    if x < 0:
        return float(abs(mp.digamma(1 - X)) + abs(mp.pi * mp.cospi(X) / mp.sinpi(X)))
    return float(abs(mp.digamma(X + 1)) + 1 / X)


def lgamma_np(x):
    r = sp.gammaln(x)
    # C99 F.9.5.4: lgamma(-inf) = +inf (scipy's gammaln returns -inf there); Mx follows C.
    return np.where(np.isneginf(x), np.inf, r)


def round_half_away(x):
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t).astype(x.dtype)


# name: (exact function, numpy/scipy float64 function)
TRANSCENDENTAL = {
    "exp": (mp.exp, np.exp), "expm1": (mp.expm1, np.expm1), "log": (mp.log, np.log),
    "log1p": (mp.log1p, np.log1p), "rsqrt": (lambda x: 1 / mp.sqrt(x), lambda x: 1 / np.sqrt(x)),
    "sin": (mp.sin, np.sin), "cos": (mp.cos, np.cos), "tan": (mp.tan, np.tan),
    "asin": (mp.asin, np.arcsin), "acos": (mp.acos, np.arccos), "atan": (mp.atan, np.arctan),
    "sinh": (mp.sinh, np.sinh), "cosh": (mp.cosh, np.cosh), "tanh": (mp.tanh, np.tanh),
    "sigmoid": (lambda x: 1 / (1 + mp.exp(-x)), sp.expit), "erf": (mp.erf, sp.erf),
    "erf_inv": (mp.erfinv, sp.erfinv), "lgamma": (lambda x: mp.re(mp.loggamma(x)), lgamma_np),
    "digamma": (mp.digamma, sp.psi),
}

# Ops that are exact in IEEE arithmetic: numpy in the array's own dtype.
# The first seven keep an integer input's type (floor/ceil/round are the identity there).
INT_SAME = {"negate": np.negative, "abs": np.abs, "sign": np.sign, "square": np.square,
            "floor": lambda x: x, "ceil": lambda x: x, "round": lambda x: x}
EXACT_UNARY = {
    "negate": np.negative, "abs": np.abs, "sign": np.sign, "square": np.square, "floor": np.floor,
    "ceil": np.ceil, "round": round_half_away, "sqrt": np.sqrt, "reciprocal": lambda x: (1 / x).astype(x.dtype),
}
BOOL_UNARY = {"is_nan": np.isnan, "is_infinity": np.isinf, "logical_not": lambda x: x == 0}


# ---- unary ----------------------------------------------------------------------------

SPECIAL = [0.0, -0.0, NAN, INF, -INF]


def unary_inputs(op, rng):
    """Op-specific values over the domain (as float64), specials first."""
    n = rng.normal
    u = rng.uniform
    pi = math.pi
    common = SPECIAL + [1.0, -1.0, 0.5, -2.5, 3.0, 1e-3, -1e10, 1e30, 1.4e-45, 5e-324]
    table = {
        "rounding": SPECIAL + [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, -0.49999997, 0.49999999999999994,
                               1e20, -1e20, 8388607.5, -8388607.5, 4503599627370495.5]
                    + list(u(-10, 10, 30)) + list(rng.integers(-6, 6, 10) + 0.5),
        "exp": SPECIAL + [1.0, -1.0, 1e-8, 88.7, 89.0, -87.0, -104.0, -110.0, 709.0, 710.0, -745.0, -746.0]
               + list(u(-100, 100, 30)) + list(u(-750, 720, 10)),
        "expm1": SPECIAL + [1e-10, -1e-10, 1e-5, -1e-5, 0.5, -0.5, 1.0, 20.0, -20.0, 88.0, 100.0, 700.0, 720.0]
                 + list(u(-5, 5, 30)) + list(n(0, 1e-4, 10)),
        "log": SPECIAL + [1.0, 2.0, 0.5, 1e-30, 1e30, -1.0, -1e-5, 1 + 2**-23, 1 - 2**-24, 1.4e-45, 5e-324, 1e300]
               + list(np.exp(u(-60, 60, 40))),
        "log1p": SPECIAL + [-1.0, -1.5, -0.999999, 1e-10, -1e-10, 1e-5, 1.0, 1e10, 1e300]
                 + list(u(-0.99, 10, 30)) + list(n(0, 1e-4, 10)),
        "sqrt": SPECIAL + [1.0, 4.0, 2.0, -1.0, -1e-30, 1e-30, 1e30, 1.4e-45, 5e-324, 1e300]
                + list(np.exp(u(-60, 60, 40))),
        "reciprocal": common + [1e-40, -3e-39, 1e-310] + list(n(0, 10, 40)),
        "trig": SPECIAL + [1.0, -1.0, pi / 2, pi, 2 * pi, -pi / 2, 1e-8, 100.0, 1e4, 1e6, 1e22, 0.7853981633974483]
                + list(u(-10, 10, 40)) + list(u(-1e5, 1e5, 10)),
        "asin": SPECIAL + [1.0, -1.0, 1.0000001, -1.5, 0.5, -0.5, 1e-10, 0.99999, -0.99999, 1 - 2**-24]
                + list(u(-1, 1, 40)),
        "atan": SPECIAL + [1.0, -1.0, 1e10, -1e10, 1e-10, 1e300, 1e-30] + list(n(0, 5, 40)),
        "hyper": SPECIAL + [1e-10, 0.5, -0.5, 1.0, 10.0, -10.0, 88.0, 89.5, 90.0, 710.0, 711.0, -711.0]
                 + list(u(-20, 20, 40)),
        "tanh": SPECIAL + [1e-10, 0.5, -0.5, 1.0, 10.0, 20.0, -20.0, 1e3] + list(u(-5, 5, 40)),
        "sigmoid": SPECIAL + [1e-10, 1.0, -1.0, 10.0, -10.0, 50.0, -50.0, 88.0, -88.0, 100.0, -100.0, -104.0,
                              750.0, -750.0] + list(u(-20, 20, 40)),
        "erf": SPECIAL + [1e-10, 1e-30, 0.5, -0.5, 1.0, -1.0, 2.0, 3.0, -3.0, 4.0, 6.0, -6.0, 10.0]
               + list(n(0, 2, 40)),
        "erf_inv": SPECIAL + [1.0, -1.0, 1.0000001, -2.0, 0.5, -0.5, 1e-10, -1e-30, 0.999999, -0.999999,
                              1 - 2**-24, 1 - 2**-53, 0.9999999999, 1e-3, 0.001001]
                   + list(u(-1, 1, 40)) + list(1 - np.exp(u(-30, -1, 10))),
        "lgamma": SPECIAL + [1.0, 2.0, 0.5, 3.0, 1e-10, -1e-10, 1e-30, 10.0, 100.0, 1e10, 1e30, 1e305, 2e307,
                             -0.5, -1.5, -2.5, -1.0, -2.0, -3.5, -10.5, -100.5, -2.4570247, -2.457024738220797,
                             1.0000001, 0.9999999, 2.0000002, 1.9999998] + list(u(0, 20, 30)) + list(u(-10, 0, 20)),
        "digamma": SPECIAL + [1.0, 2.0, 0.5, 1.4616321449683622, 1.46163, 1e-10, -1e-10, 1e-30, 10.0, 100.0,
                              1e10, 1e30, -1.0, -2.0, -0.3, -9.9]
                   + list(u(0, 20, 30)) + list(u(-10, 0, 20)),
        "plain": common + list(n(0, 10, 40)),
    }
    family = {"floor": "rounding", "ceil": "rounding", "round": "rounding", "rsqrt": "sqrt",
              "sin": "trig", "cos": "trig", "tan": "trig", "acos": "asin", "sinh": "hyper", "cosh": "hyper"}
    return np.array(table.get(family.get(op, op), table["plain"]), np.float64)


def unary_expected(op, x):
    """(expected Arr, aux) of op at Arr x (f16/bf16: computed in f32, rounded back)."""
    t = x.t
    if op in BOOL_UNARY:
        return Arr("bool", BOOL_UNARY[op](x.f64() if t in FLOATS else x.a)), {}
    if op == "stop_gradient":  # the identity on values
        return Arr(t, x.a.copy()), {}
    if op in INT_SAME and t not in FLOATS:  # integer ops wrap like C
        return Arr(t, INT_SAME[op](x.a).astype(NP[t])), {}
    if op in EXACT_UNARY and t not in FLOATS:  # float ops compute integers in f32
        return Arr("f32", EXACT_UNARY[op](x.a.astype(np.float32))), {}
    if op in EXACT_UNARY:
        if t in ("f32", "f64"):
            return Arr(t, EXACT_UNARY[op](x.a)), {}
        return to_small(EXACT_UNARY[op](x.f64().astype(np.float32)).astype(np.float64), t), {}
    out_t = t if t in FLOATS else "f32"
    x64 = x.f64() if t in FLOATS else x.a.astype(np.float32).astype(np.float64)
    mfun, nfun = TRANSCENDENTAL[op]
    aux = {}
    scale = None
    if op in ("lgamma", "digamma"):
        f = lgamma_scale if op == "lgamma" else digamma_scale
        scale = np.array([f(float(v)) for v in x64.flat]).reshape(x64.shape)
        aux["scale"] = Arr("f64", scale)
    truth = exact_unary(op, mfun, nfun, x64, scale)
    return from_f64(truth, out_t), aux


UNARY = ["negate", "abs", "sign", "square", "floor", "ceil", "round", "exp", "expm1", "log", "log1p", "sqrt",
         "rsqrt", "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "sigmoid",
         "erf", "erf_inv", "lgamma", "digamma", "is_nan", "is_infinity", "logical_not"]
INT_SPECIAL = {"s32": [0, 1, -1, 2, -2, 7, -7, 100, 2**31 - 1, -2**31],
               "s64": [0, 1, -1, 2, -2, 7, -7, 3, 2**63 - 1, -2**63],
               "u8": [0, 1, 2, 3, 7, 100, 128, 255], "s8": [0, 1, -1, 127, -128], "u16": [0, 1, 65535]}


def gen_unary():
    cf = CaseFile("unary")
    rng = np.random.default_rng(101)
    for op in UNARY:
        x64 = unary_inputs(op, rng)
        for t in ("f32", "f64"):
            x = A(t, x64)
            exp_, aux = unary_expected(op, x)
            cf.add(f"{op} {t} [{x64.size}]", op, [x], exp_, aux=aux)
        # rank 0, and a zero-size array with a zero-length axis in the middle
        x = A("f32", np.array(x64[7]))
        e, aux = unary_expected(op, x)
        cf.add(f"{op} f32 rank-0", op, [x], e, aux=aux)
        x = A("f64", np.zeros((2, 0, 3)))
        e, aux = unary_expected(op, x)
        cf.add(f"{op} f64 [2,0,3]", op, [x], e, aux=aux)
    # digamma at and near negative half-integers, where cot(pi x) in the reflection vanishes
    x64 = np.array([-0.5, -1.5, -2.5, -3.5, -10.5, -0.5040830082644554, -1.4999999, -2.5000001])
    for t in ("f32", "f64"):
        x = A(t, x64)
        e, aux = unary_expected("digamma", x)
        cf.add(f"digamma {t} near negative half-integers", "digamma", [x], e, aux=aux)
    for t in ("f32", "f64", "s32", "bf16"):
        x = A(t, [1, -2, 3, 0, 5, 7])
        cf.add(f"stop_gradient {t} [6]", "stop_gradient", [x], unary_expected("stop_gradient", x)[0])
    # integer inputs: SAME ops keep the type (and wrap), BOOL ops read them, FLOAT ops compute in f32
    for t in ("s32", "s64", "u8"):
        lo, hi = int_range(t)
        vals = INT_SPECIAL[t] + [int(v) for v in rng.integers(lo, hi, 20, dtype=np.int64 if t != "u8" else np.uint8)]
        x = A(t, vals, (2, len(vals) // 2))
        for op in ("negate", "abs", "sign", "square", "floor", "ceil", "round", "is_nan", "is_infinity",
                   "logical_not"):
            e, _ = unary_expected(op, x)
            cf.add(f"{op} {t} {shape_str(x.shape)}", op, [x], e)
    x = A("s32", [0, 1, 4, 9, 2, 100000, 16777217])
    for op in ("sqrt", "reciprocal", "exp", "log1p"):
        e, aux = unary_expected(op, x)
        cf.add(f"{op} s32 [7] computes in f32", op, [x], e, aux=aux)
    # f16 and bf16 are storage types: the op runs in f32 and rounds back
    for t in ("f16", "bf16"):
        x = A(t, [0.0, -0.0, 1.0, -2.5, 0.1, 3.14159, 100.0, -7.75, 60000.0, 1e-6, NAN, INF, -INF]
              + list(rng.normal(0, 3, 12)))
        for op in ("negate", "abs", "square", "sqrt", "exp", "log", "tanh", "floor", "is_nan"):
            e, aux = unary_expected(op, x)
            cf.add(f"{op} {t} {shape_str(x.shape)}", op, [x], e, aux=aux)
    cf.write()


# ---- binary ---------------------------------------------------------------------------


def logaddexp_exact(a, b):
    return mp.log(mp.exp(a) + mp.exp(b))


def mp_pow(a, b):
    return mp.power(a, b)


BINARY_EXACT = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide,
                "max": np.maximum, "min": np.minimum, "remainder": np.fmod}
BINARY_TRANSC = {"pow": (mp_pow, np.power), "atan2": (mp.atan2, np.arctan2),
                 "logaddexp": (logaddexp_exact, np.logaddexp)}
COMPARE = {"equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
           "greater": np.greater, "greater_equal": np.greater_equal,
           "logical_and": lambda a, b: np.logical_and(a != 0, b != 0),
           "logical_or": lambda a, b: np.logical_or(a != 0, b != 0)}
BINARY = list(BINARY_EXACT) + list(BINARY_TRANSC) + list(COMPARE)


def binary_expected(op, a, b):
    """Expected Arr and aux for op on Arrs a and b of the same float type t (or ints)."""
    t = a.t
    if op in COMPARE:
        x, y = (a.f64(), b.f64()) if t in FLOATS else (a.a, b.a)
        return Arr("bool", np.asarray(COMPARE[op](x, y))), {}
    if t not in FLOATS:
        return int_binary(op, a, b), {}
    if op in BINARY_EXACT:
        if t in ("f32", "f64"):
            return Arr(t, np.asarray(BINARY_EXACT[op](a.a, b.a)).astype(NP[t])), {}
        r = BINARY_EXACT[op](a.f64().astype(np.float32), b.f64().astype(np.float32))
        return to_small(np.asarray(r, np.float64), t), {}
    mfun, nfun = BINARY_TRANSC[op]
    aux = {}
    scale = None
    if op == "logaddexp":
        # log(e^a + e^b) = max + log1p(e^-|a-b|): errors scale with the inputs' size, not the result's
        scale = np.maximum(np.abs(a.f64()), np.abs(b.f64()))
        scale = np.where(np.isfinite(scale), scale, 0.0)
        aux["scale"] = Arr("f64", np.broadcast_to(scale, np.broadcast_shapes(a.shape, b.shape)).copy())
    truth = exact_binary(op, mfun, nfun, a.f64(), b.f64(), scale)
    return from_f64(truth, t), aux


def int_binary(op, a, b):
    """Integer ops in exact Python arithmetic, wrapped to the type (numpy's and C's semantics)."""
    t = a.t
    x, y = np.broadcast_arrays(a.a, b.a)
    out = []
    for p, q in zip(x.flat, y.flat):
        p, q = int(p), int(q)
        if op == "add":
            r = p + q
        elif op == "subtract":
            r = p - q
        elif op == "multiply":
            r = p * q
        elif op == "max":
            r = max(p, q)
        elif op == "min":
            r = min(p, q)
        elif op == "remainder":  # C's %: the sign of the dividend; x % 0 is 0 in Mx (numpy's fmod too)
            r = 0 if q == 0 else (abs(p) % abs(q)) * (-1 if p < 0 else 1)
        elif op == "pow":
            assert q >= 0
            r = pow(p, q, 1 << bits_of(t))
        else:
            raise ValueError(op)
        out.append(wrap(r, t))
    res = np.array(out, dtype=NP[t]).reshape(x.shape)
    if op in ("add", "subtract", "multiply", "max", "min", "pow"):  # numpy agrees (it wraps too)
        ref = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "max": np.maximum,
               "min": np.minimum, "pow": np.power}[op](a.a, b.a)
        assert np.array_equal(ref, res), (op, t)
    if op == "remainder":  # np.fmod agrees wherever it is defined (it traps on MIN % -1)
        xf, yf, rf = x.ravel(), y.ravel(), res.ravel()
        ok = (yf != 0) & ~((xf == int_range(t)[0]) & (yf == -1))
        assert np.array_equal(np.fmod(xf[ok], yf[ok]), rf[ok]), t
    return Arr(t, res)


def binary_values(op, rng, size):
    """Random operands suited to op (float64)."""
    if op == "pow":
        return rng.uniform(0.1, 4, size), rng.uniform(-3, 3, size)
    if op in COMPARE:  # small integers make ties
        return rng.integers(-3, 4, size).astype(float), rng.integers(-3, 4, size).astype(float)
    if op == "remainder":
        return rng.normal(0, 10, size), rng.normal(0, 3, size)
    if op == "logaddexp":
        return rng.normal(0, 20, size), rng.normal(0, 20, size)
    return rng.normal(0, 10, size), rng.normal(0, 10, size)


FLOAT_K = [0.0, -0.0, 1.0, -1.0, 2.5, -3.0, 1e30, -1e-30, 7.0, INF, -INF, NAN]
SPECIAL_PAIRS = {
    "pow": ([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, 10.0, 1e-30, INF, -INF, NAN],
            [0.0, -0.0, 1.0, -1.0, 2.0, 3.0, 0.5, -0.5, -3.0, INF, -INF, NAN]),
    "atan2": ([0.0, -0.0, 1.0, -1.0, 3.0, 1e-30, INF, -INF, NAN],) * 2,
    "remainder": ([0.0, -0.0, 1.0, -1.0, 7.5, -7.5, 1e30, 5e-324, INF, NAN],
                  [0.0, -0.0, 1.0, -1.0, 2.0, -2.5, 0.3, INF, -INF, NAN]),
    "logaddexp": ([0.0, -0.0, 1.0, -1.0, 100.0, -100.0, 1e30, -1e30, INF, -INF, NAN],) * 2,
}


def gen_binary():
    cf = CaseFile("binary")
    rng = np.random.default_rng(202)
    shapes = [((3, 4), (4,)), ((2, 1, 3), (4, 3)), ((3, 4), ()), ((), (3, 4)), ((), ()), ((0, 3), (3,)),
              ((5, 7), (5, 7))]
    for op in BINARY:
        for t in ("f32", "f64"):
            ka, kb = SPECIAL_PAIRS.get(op, (FLOAT_K, FLOAT_K))
            a, b = A(t, np.array(ka)[:, None]), A(t, kb)  # every pair of specials, by broadcasting
            e, aux = binary_expected(op, a, b)
            cf.add(f"{op} {t} specials {shape_str(a.shape)} {shape_str(b.shape)}", op, [a, b], e, aux=aux)
            for sa, sb in shapes:
                x, y = binary_values(op, rng, int(np.prod(sa))), binary_values(op, rng, int(np.prod(sb)))
                a, b = A(t, x[0], sa), A(t, y[1], sb)
                e, aux = binary_expected(op, a, b)
                cf.add(f"{op} {t} {shape_str(sa)} {shape_str(sb)}", op, [a, b], e, aux=aux)
            # an Elixir number on one side takes the array's type
            s = {"pow": 2.0, "remainder": 2.5, "atan2": -1.5}.get(op, 2.5)
            x = binary_values(op, rng, 5)[0]
            a = A(t, x)
            e, aux = binary_expected(op, a, A(t, np.array(s)))
            if "scale" in aux:
                aux["scale"] = Arr("f64", aux["scale"].a.reshape(e.shape))
            cf.add(f"{op} {t} [5] with the number {s}", op, [a, s], e, aux=aux)
    int_ops = ["add", "subtract", "multiply", "max", "min", "remainder", "pow"] + list(COMPARE)
    for t in ("s32", "s64", "u8"):
        lo, hi = int_range(t)
        k = INT_SPECIAL[t]
        for op in int_ops:
            if op == "pow":
                ka = k if t != "s32" else [0, 1, -1, 2, -2, 3, -7, 2**31 - 1, -2**31]
                kb = [0, 1, 2, 3, 7, 31, 40, 63]
                a, b = A(t, np.array(ka, dtype=object)[:, None]), A(t, kb)
            else:
                a, b = A(t, np.array(k, dtype=object)[:, None]), A(t, k)
            cf.add(f"{op} {t} specials {shape_str(a.shape)} {shape_str(b.shape)}", op, [a, b], binary_expected(op, a, b)[0])
            for sa, sb in [((3, 4), (4,)), ((2, 1, 3), (4, 3)), ((), ()), ((0, 3), (3,))]:
                if op == "pow":
                    x = rng.integers(max(lo, -5), 6, sa)
                    y = rng.integers(0, 13, sb)
                elif op in COMPARE:
                    x, y = rng.integers(max(lo, -3), 4, sa), rng.integers(max(lo, -3), 4, sb)
                else:
                    full = t != "s64"  # int64 draws cannot include the endpoint 2^63 - 1
                    x = rng.integers(lo, hi, sa, dtype=np.int64, endpoint=full)
                    y = rng.integers(lo, hi, sb, dtype=np.int64, endpoint=full)
                    if op == "remainder":  # small divisors too, and zeros
                        y = np.where(rng.random(sb) < 0.5, rng.integers(-4 if lo < 0 else 0, 5, sb), y)
                a, b = A(t, np.array(x, dtype=object)), A(t, np.array(y, dtype=object))
                cf.add(f"{op} {t} {shape_str(sa)} {shape_str(sb)}", op, [a, b], binary_expected(op, a, b)[0])
            a = A(t, np.array(rng.integers(0, 100, 6), dtype=object))
            n = 3
            cf.add(f"{op} {t} [6] with the number {n}", op, [a, n], binary_expected(op, a, A(t, n))[0])
    # type promotion (Mx.Type): the reference converts both sides to the promoted type first
    promo = [("add", "u8", "s32", "s32"), ("add", "u8", "s8", "s16"), ("multiply", "s64", "f32", "f32"),
             ("subtract", "f32", "f64", "f64"), ("add", "bool", "s32", "s32"), ("max", "u16", "s8", "s32"),
             ("divide", "s32", "s32", "f32"), ("less", "u8", "s8", "bool"), ("add", "f16", "bf16", "f32"),
             ("multiply", "f16", "f16", "f16"), ("add", "bf16", "bf16", "bf16")]
    for op, ta, tb, tout in promo:
        vals = {"bool": [True, False, True, True], "u8": [0, 7, 200, 255], "s8": [-128, -3, 5, 127],
                "u16": [0, 300, 65535, 9], "s32": [-100000, 3, 0, 77], "s64": [-3, 12, 100000, 7],
                "f32": [0.5, -1.25, 3e10, 1.0], "f64": [0.1, -2.0, 1e300, 1.0 / 3],
                "f16": [0.1, -2.5, 60000.0, 1e-5], "bf16": [0.1, -2.5, 3e38, 1e-30]}
        a, b = A(ta, vals[ta]), A(tb, vals[tb][::-1])
        ct = "f32" if tout in ("f16", "bf16", "bool") and ta in FLOATS else tout
        if op == "divide" or tout == "bool":
            ct = "f32" if op == "divide" else ("s16" if op == "less" else ct)
        x = A(ct, a.f64() if ta in FLOATS else a.a.astype(object))
        y = A(ct, b.f64() if tb in FLOATS else b.a.astype(object))
        e, aux = binary_expected(op, x, y)
        if tout in ("f16", "bf16"):
            e = to_small(e.f64(), tout)
        cf.add(f"{op} {ta} {tb} promotes to {tout}", op, [a, b], e, aux=aux)
    cf.write()


# ---- select and clip --------------------------------------------------------------------


def gen_select_clip():
    cf = CaseFile("select_clip")
    rng = np.random.default_rng(303)
    for t in ("f32", "f64", "s32", "u8"):
        is_f = t in ("f32", "f64")
        for pt, pred in (("bool", rng.random((3, 4)) < 0.5), ("s32", rng.integers(-1, 2, (3, 4))),
                         ("f32", np.array([NAN, 0.0, -0.0, 2.0] * 3).reshape(3, 4))):
            p = A(pt, pred if pt != "s32" else np.array(pred, dtype=object))
            x = A(t, rng.normal(0, 5, (3, 4)) if is_f else np.array(rng.integers(0, 100, (3, 4)), dtype=object))
            y = A(t, rng.normal(0, 5, (4,)) if is_f else np.array(rng.integers(0, 100, (4,)), dtype=object))
            truthy = p.f64() != 0 if pt in FLOATS else p.a != 0
            e = Arr(t, np.where(truthy, x.a, y.a))
            cf.add(f"select {pt} {t} [3,4] [3,4] [4]", "select", [p, x, y], e)
        p = A("bool", [True, False])
        x = A(t, [1, 2] if not is_f else [1.5, NAN])
        cf.add(f"select bool {t} [2] number", "select", [p, x, 0], Arr(t, np.where(p.a, x.a, np.zeros(1, NP[t]))))
        p = A("bool", np.array(True))
        x, y = A(t, np.array(5)), A(t, np.array(7))
        cf.add(f"select bool {t} rank-0", "select", [p, x, y], Arr(t, np.where(p.a, x.a, y.a)))
        # clip = min(max(a, lo), hi) with NaN propagating, as np.minimum/np.maximum
        if is_f:
            a = A(t, np.array([-3.0, -1.0, 0.0, 0.5, 2.0, 5.0, NAN, INF, -INF, -0.0]))
            lo, hi = -1.0, 2.0
        else:
            a = A(t, np.array([0, 1, 3, 50, 99, 100, 7, 2, 255 if t == "u8" else -5, 8], dtype=object))
            lo, hi = 2, 50
        e = Arr(t, np.minimum(np.maximum(a.a, NP[t](lo)), NP[t](hi)))
        cf.add(f"clip {t} [10] numbers", "clip", [a, lo, hi], e)
        a = A(t, rng.normal(0, 3, (3, 4)) if is_f else np.array(rng.integers(0, 100, (3, 4)), dtype=object))
        l = A(t, rng.normal(-1, 1, (4,)) if is_f else np.array(rng.integers(0, 30, (4,)), dtype=object))
        h = A(t, rng.normal(1, 1, (3, 1)) if is_f else np.array(rng.integers(40, 90, (3, 1)), dtype=object))
        e = Arr(t, np.minimum(np.maximum(a.a, l.a), h.a))
        cf.add(f"clip {t} [3,4] [4] [3,1]", "clip", [a, l, h], e)
    cf.write()


# ---- as_type --------------------------------------------------------------------------

TYPES = ["f32", "f64", "f16", "bf16", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "bool"]


def convert(v, src, dst):
    """One value of type src (a float for float types, an int or bool otherwise)
    converted as Mx documents: float -> int truncates toward zero and saturates
    (NaN -> 0); int -> int wraps; -> bool is v != 0; -> float rounds to nearest even."""
    if dst == "bool":
        return bool(v != 0) if not (isinstance(v, float) and math.isnan(v)) else True
    if src == "bool":
        v = int(v)
    if dst in FLOATS:
        if isinstance(v, float) and not math.isfinite(v):
            return v
        if dst == "f64":
            return float(Fraction(v)) if math.isfinite(float(v)) else float(v)
        return round_fmt(v, dst)
    if isinstance(v, float):
        if math.isnan(v):
            return 0
        lo, hi = int_range(dst)
        if math.isinf(v):
            return hi if v > 0 else lo
        return min(max(int(v), lo), hi)  # int() truncates toward zero
    return wrap(int(v), dst)


def typed_values(t, rng):
    if t in FLOATS:
        vals = [0.0, -0.0, 0.5, -0.5, 1.7, -1.7, 2.5, -2.5, 127.9, 128.0, -128.5, -129.0, 255.9, 256.0, 300.0,
                -300.0, 32767.5, 65535.9, 70000.0, 2147483647.0, 2147483648.0, -2147483649.0, 4294967296.0, 1e10,
                -1e10, 9.3e18, 1e19, 1.9e19, -1e19, 1e30, 1e-8, 65504.0, 65519.0, 65520.0, 1e-5, 6e-8, 3e-8,
                2.9802322387695312e-08, 3.4e38, 3.4028235677973366e38, 1e39, 1e-40, 1.0000000596046448,
                1.00390625, 1.01171875, 16777217.0, NAN, INF, -INF] + list(rng.normal(0, 100, 11))
        return A(t, vals)
    if t == "bool":
        return A(t, [True, False, True, True, False])
    lo, hi = int_range(t)
    vals = [0, 1, -1, 127, 128, 255, 256, -128, -129, 32767, 65535, 65536, 2**31 - 1, -2**31, 2**53 + 1,
            2**63 - 1, -2**63, 16777217, 2049, 2**60 + 2**36 + 1, 2**24 + 3]
    vals += [int(v) for v in rng.integers(lo, hi, 9, dtype=np.int64 if hi < 2**63 else np.uint64, endpoint=True)]
    return A(t, np.array(vals, dtype=object))


def gen_as_type():
    cf = CaseFile("as_type")
    rng = np.random.default_rng(404)
    for src in TYPES:
        x = typed_values(src, rng)
        if src in FLOATS:
            py = [float(v) for v in x.f64()]
        elif src == "bool":
            py = [bool(v) for v in x.a]
        else:
            py = [int(v) for v in x.a]
        for dst in TYPES:
            out = [convert(v, src, dst) for v in py]
            if dst in FLOATS:
                e = from_f64(np.array(out, np.float64), dst) if dst != "f64" else Arr("f64", np.array(out, np.float64))
                if dst == "f32":  # values are exact f32 values already
                    e = Arr("f32", np.array(out, np.float64).astype(np.float32))
                if dst == "f16" and src in ("f32", "f64", "f16"):  # our rounding agrees with numpy's
                    assert np.array_equal(e.a, x.a.astype(np.float16), equal_nan=True), src
            elif dst == "bool":
                e = Arr("bool", np.array(out, np.bool_))
            else:
                e = Arr(dst, np.array(out, dtype=object).astype(NP[dst]))
            cf.add(f"as_type {src} -> {dst} [{len(py)}]", "as_type", [x, Atom(dst)], e)
    # Above 2^53 an integer must round once, straight to bf16 (through double it can round twice).
    for src, vals in (("s64", [2**60 + 2**52 + 1, -(2**60 + 2**52 + 1), 2**60 + 2**52, 2**62 + 3 * 2**54 + 1]),
                      ("u64", [2**60 + 2**52 + 1, 2**63 + 2**55 + 1, 2**64 - 1])):
        x = A(src, np.array(vals, dtype=object))
        e = to_small(np.array([float(round_fmt(v, "bf16")) for v in vals]), "bf16")
        cf.add(f"as_type {src} -> bf16 above 2^53", "as_type", [x, Atom("bf16")], e)
    x = A("f64", np.array(2.75))
    cf.add("as_type f64 -> s32 rank-0", "as_type", [x, Atom("s32")], A("s32", np.array(2)))
    x = A("f32", np.zeros((0, 4)))
    cf.add("as_type f32 -> f16 [0,4]", "as_type", [x, Atom("f16")], A("f16", np.zeros((0, 4))))
    cf.write()


# ---- reductions and scans -------------------------------------------------------------


def moved(x, axes):
    """x with the reduced axes moved last and flattened: (rows, n, out shape without keep)."""
    nd = x.ndim
    axes = list(range(nd)) if axes is None else [a % nd for a in axes]
    keep = [d for d in range(nd) if d not in axes]
    y = np.transpose(x, keep + axes)
    out_shape = tuple(x.shape[d] for d in keep)
    n = int(np.prod([x.shape[d] for d in axes])) if axes else 1
    return y.reshape(int(np.prod(out_shape)) if out_shape else 1, n), n, out_shape, axes


def kept_shape(shape, axes, keep):
    nd = len(shape)
    axes = list(range(nd)) if axes is None else [a % nd for a in axes]
    if keep:
        return tuple(1 if d in axes else s for d, s in enumerate(shape))
    return tuple(s for d, s in enumerate(shape) if d not in axes)


def exact_sum(row):
    if not np.all(np.isfinite(row)):
        return float(np.sum(row))
    return math.fsum(float(v) for v in row)


def exact_prod(row):
    if not np.all(np.isfinite(row)):
        return float(np.prod(row))
    p = Fraction(1)
    for v in row:
        p *= Fraction(float(v))
    return float(p)


def exact_logsumexp(row):
    if not np.all(np.isfinite(row)) and not np.all(np.isfinite(row) | np.isneginf(row)):
        return float(sp.logsumexp(row))
    finite = [mp.exp(mp.mpf(float(v))) for v in row if math.isfinite(v)]
    return float(mp.log(mp.fsum(finite))) if finite else -INF


def reduce_case(cf, fun, x, axes, keep, name_extra=""):
    t = x.t
    x64 = x.f64() if t in FLOATS else x.a
    rows, n, out_shape, _ = moved(x64, axes)
    shape = kept_shape(x.shape, axes, keep)
    aux = {}
    if fun in ("sum", "product", "mean") and t not in FLOATS:
        if fun == "mean":
            r = np.array([math.fsum(float(v) for v in row) / n for row in rows])
            res = Arr("f32", r.astype(np.float32))
            aux["abs_sum"] = Arr("f64", np.array([math.fsum(abs(float(v)) for v in row) for row in rows]))
        else:
            wide = np.uint64 if t.startswith("u") else np.int64
            r = (np.sum if fun == "sum" else np.prod)(rows.astype(wide), axis=1)  # wraps mod 2^64 like C
            res = Arr("u64" if t.startswith("u") else "s64", r.astype(wide))
    elif fun in ("sum", "mean"):
        r = np.array([exact_sum(row) for row in rows]) / (n if fun == "mean" else 1)
        res = from_f64(r, t)
        aux["abs_sum"] = Arr("f64", np.array([math.fsum(abs(float(v)) for v in row) if np.all(np.isfinite(row))
                                              else 0.0 for row in rows]))
    elif fun == "product":
        res = from_f64(np.array([exact_prod(row) for row in rows]), t)
    elif fun == "logsumexp":
        r = np.array([exact_logsumexp(row) for row in rows])
        theirs = sp.logsumexp(rows, axis=1)
        res = from_f64(r, t)
        m = np.max(rows, axis=1)
        fin = np.isfinite(m)
        spread = np.array([np.max(np.abs(row[np.isfinite(row)] - mm)) if f and np.any(np.isfinite(row)) else 0.0
                           for row, mm, f in zip(rows, m, fin)])
        aux["spread"] = Arr("f64", spread.reshape(shape))
        aux["max_abs"] = Arr("f64", np.where(fin, np.abs(m), 0.0).reshape(shape))
        crosscheck("logsumexp", rows[:, 0], r, theirs, np.where(fin, np.abs(m) + spread, 0.0))
    elif fun in ("reduce_max", "reduce_min"):
        r = (np.max if fun == "reduce_max" else np.min)(rows, axis=1)
        res = Arr(t, r.astype(x.a.dtype))
    elif fun in ("all", "any"):
        r = (np.all if fun == "all" else np.any)(rows != 0, axis=1)
        res = Arr("bool", r)
    else:
        raise ValueError(fun)
    res.a = res.a.reshape(shape)
    for k in aux:
        aux[k].a = aux[k].a.reshape(shape)
    if aux or fun in ("sum", "mean", "product", "logsumexp"):
        aux["n"] = n
    opts = KW(axes=axes, keep_axes=keep) if axes is not None else KW(keep_axes=keep)
    ax = "all" if axes is None else str(axes).replace(" ", "")
    cf.add(f"{fun} {t} {shape_str(x.shape)} axes={ax}{' keep' if keep else ''}{name_extra}", fun, [x], res,
           opts=opts, aux=aux)


def arg_case(cf, fun, x, axis, keep):
    x64 = x.f64() if x.t in FLOATS else x.a
    f = np.argmax if fun == "argmax" else np.argmin  # first occurrence; the first NaN wins
    r = f(x64, axis=axis, keepdims=keep) if axis is not None else np.array(f(x64))
    opts = KW(axis=axis, keep_axis=keep) if axis is not None else KW()
    cf.add(f"{fun} {x.t} {shape_str(x.shape)} axis={axis}{' keep' if keep else ''}", fun, [x],
           Arr("s64", np.asarray(r, np.int64)), opts=opts)


def gen_reduce():
    cf, long = CaseFile("reduce"), CaseFile("reduce_long")
    rng = np.random.default_rng(505)
    axes_sets = [None, [0], [1], [2], [0, 2], [1, 2], [-1], [0, 1, 2]]
    for t in ("f32", "f64"):
        data = {"sum": rng.normal(0, 10, (3, 4, 5)), "mean": rng.normal(3, 10, (3, 4, 5)),
                "product": rng.uniform(0.5, 1.5, (3, 4, 5)) * rng.choice([-1, 1], (3, 4, 5)),
                "reduce_max": rng.normal(0, 10, (3, 4, 5)), "reduce_min": rng.normal(0, 10, (3, 4, 5)),
                "all": rng.choice([0.0, 1.0, -2.5, NAN], (3, 4, 5), p=[0.1, 0.6, 0.2, 0.1]),
                "any": rng.choice([0.0, -0.0, 1.0], (3, 4, 5), p=[0.6, 0.35, 0.05]),
                "logsumexp": rng.normal(0, 30, (3, 4, 5))}
        for fun, d in data.items():
            x = A(t, d)
            for axes in axes_sets:
                for keep in (False, True):
                    reduce_case(cf, fun, x, axes, keep)
        # NaN and infinities: max/min and sums propagate NaN, logsumexp handles -inf rows
        x = A(t, [[1.0, NAN, 3.0], [-INF, 2.0, 5.0], [INF, -INF, 0.0], [-INF, -INF, -INF]])
        for fun in ("sum", "product", "reduce_max", "reduce_min", "logsumexp", "mean", "all", "any"):
            reduce_case(cf, fun, x, [1], False, " nan/inf")
        # long rows and columns: pairwise and blocked sums against the n*eps*sum|x| bound
        x = A(t, rng.normal(1, 10, (3000,)))
        for fun in ("sum", "mean", "logsumexp"):
            reduce_case(long, fun, x, None, False, " long")
        x = A(t, rng.normal(0, 1, (128, 40)))
        reduce_case(long, "sum", x, [0], False, " long columns")
        reduce_case(long, "logsumexp", x, [1], True, " long rows")
        # rank 0 and empty reductions (sum 0, product 1, all true, any false)
        x = A(t, np.array(2.5))
        for fun in ("sum", "product", "reduce_max", "mean", "all"):
            reduce_case(cf, fun, x, None, False, " rank-0")
        x = A(t, np.zeros((0, 3)))
        for fun in ("sum", "product", "all", "any"):
            reduce_case(cf, fun, x, [0], False, " empty")
            reduce_case(cf, fun, x, None, True, " empty")
        for axis in (None, 0, 1, 2, -1):
            for keep in ((False, True) if axis is not None else (False,)):
                x = A(t, rng.integers(-3, 4, (3, 4, 5)).astype(float))  # ties
                for fun in ("argmax", "argmin"):
                    arg_case(cf, fun, x, axis, keep)
        x = A(t, [[1.0, NAN, 5.0, NAN], [2.0, 2.0, -1.0, -1.0], [-INF, INF, INF, -INF]])
        for fun in ("argmax", "argmin"):
            arg_case(cf, fun, x, 1, False)
            arg_case(cf, fun, x, None, False)
    for t in ("s32", "u8", "s64"):
        lo, hi = int_range(t)
        big = A(t, np.array(rng.integers(lo, hi, (3, 4, 5), dtype=np.int64, endpoint=t != "s64"), dtype=object))
        small = A(t, np.array(rng.integers(max(lo, -3), 4, (3, 4, 5)), dtype=object))
        for axes in [None, [0], [2], [0, 2]]:
            for keep in (False, True):
                for fun, x, extra in (("sum", big, ""), ("product", small, " small values"),
                                      ("product", big, " wrapping"), ("reduce_max", big, ""), ("reduce_min", big, ""),
                                      ("all", small, ""), ("any", small, ""), ("mean", small, "")):
                    reduce_case(cf, fun, x, axes, keep, extra)
        for axis in (None, 0, 2):
            for fun in ("argmax", "argmin"):
                arg_case(cf, fun, small, axis, False)
    b = A("bool", rng.random((3, 4)) < 0.3)
    for fun in ("all", "any", "sum"):
        for axes in (None, [0], [1]):
            reduce_case(cf, fun, b, axes, False)
    cf.write()
    long.write()


def scan_ref(fun, x, axis, reverse):
    """(expected Arr, aux) of a cumulative op along axis."""
    t = x.t
    x64 = x.f64() if t in FLOATS else x.a
    y = np.moveaxis(x64, axis, -1)
    if reverse:
        y = y[..., ::-1]
    aux = {}
    if fun in ("cumulative_max", "cumulative_min"):
        r = (np.maximum if fun == "cumulative_max" else np.minimum).accumulate(y, axis=-1)
        out_t = t
    elif t not in FLOATS:
        wide = np.uint64 if t.startswith("u") else np.int64
        r = (np.cumsum if fun == "cumulative_sum" else np.cumprod)(y.astype(wide), axis=-1)
        out_t = "u64" if t.startswith("u") else "s64"
    else:
        r = np.empty(y.shape)
        absr = np.empty(y.shape)
        for idx in np.ndindex(y.shape[:-1]):
            if not np.all(np.isfinite(y[idx])):  # NaN and infinities propagate the same in any precision
                r[idx] = (np.cumsum if fun == "cumulative_sum" else np.cumprod)(y[idx])
                absr[idx] = np.cumsum(np.abs(y[idx]))
                continue
            acc, absacc = (Fraction(0), Fraction(0)) if fun == "cumulative_sum" else (Fraction(1), None)
            for j, v in enumerate(y[idx]):
                if fun == "cumulative_sum":
                    acc += Fraction(float(v))
                    absacc += abs(Fraction(float(v)))
                    absr[idx + (j,)] = float(absacc)
                else:
                    acc *= Fraction(float(v))
                r[idx + (j,)] = float(acc)
        if fun == "cumulative_sum":
            aux["abs_scan"] = absr
        out_t = t
    fix = lambda a: np.moveaxis(a[..., ::-1] if reverse else a, -1, axis)
    r = fix(r)
    aux = {k: Arr("f64", C(fix(v))) for k, v in aux.items()}
    if out_t in FLOATS:
        return from_f64(C(r), out_t), aux
    return Arr(out_t, C(r).astype(NP[out_t])), aux


def gen_scan():
    cf = CaseFile("scan")
    rng = np.random.default_rng(606)
    funs = ["cumulative_sum", "cumulative_product", "cumulative_max", "cumulative_min"]
    for t in ("f32", "f64", "s32", "u8"):
        for fun in funs:
            if t in FLOATS:
                d = rng.uniform(0.5, 1.5, (6, 5)) if fun == "cumulative_product" else rng.normal(0, 10, (6, 5))
                x = A(t, d)
            else:
                lo, hi = int_range(t)
                d = rng.integers(max(lo, -4), 5, (6, 5)) if fun == "cumulative_product" else rng.integers(lo, hi, (6, 5))
                x = A(t, np.array(d, dtype=object))
            for axis in (0, 1, -1):
                for reverse in (False, True):
                    e, aux = scan_ref(fun, x, axis, reverse)
                    aux = dict(aux, n=x.shape[axis]) if t in FLOATS else aux
                    cf.add(f"{fun} {t} [6,5] axis={axis}{' reverse' if reverse else ''}", fun, [x], e,
                           opts=KW(axis=axis, reverse=reverse), aux=aux)
    for t in ("f32", "f64"):
        x = A(t, [[1.0, NAN, 3.0, 0.5], [2.0, -INF, 5.0, INF], [-0.0, 0.0, -1.0, 7.0]])
        for fun in funs:
            for reverse in (False, True):
                e, aux = scan_ref(fun, x, 1, reverse)
                cf.add(f"{fun} {t} nan/inf{' reverse' if reverse else ''}", fun, [x], e,
                       opts=KW(axis=1, reverse=reverse), aux=dict(aux, n=4))
        x = A(t, rng.normal(0, 1, (2, 1000)))
        for reverse in (False, True):
            e, aux = scan_ref("cumulative_sum", x, 1, reverse)
            cf.add(f"cumulative_sum {t} [2,1000] long{' reverse' if reverse else ''}", "cumulative_sum", [x], e,
                   opts=KW(axis=1, reverse=reverse), aux=dict(aux, n=1000))
        x = A(t, rng.normal(0, 1, (3, 4, 5)))
        e, aux = scan_ref("cumulative_sum", x, 1, False)
        cf.add(f"cumulative_sum {t} [3,4,5] default axis", "cumulative_sum", [x], scan_ref("cumulative_sum", x, 0, False)[0],
               aux=dict(scan_ref("cumulative_sum", x, 0, False)[1], n=3))
        x = A(t, np.zeros((0, 3)))
        e, aux = scan_ref("cumulative_sum", x, 0, False)
        cf.add(f"cumulative_sum {t} [0,3]", "cumulative_sum", [x], e, opts=KW(axis=0), aux=dict(aux, n=0))
    cf.write()


# ---- sort -----------------------------------------------------------------------------


def sort_order(lane, desc, is_float):
    """Stable order of a 1-d lane as kernels.h defines it: NaNs last ascending
    and first descending (in their original order); equal values keep their order."""
    idx = list(range(len(lane)))
    nans = [i for i in idx if is_float and math.isnan(lane[i])]
    rest = [i for i in idx if i not in nans]
    rest = sorted(rest, key=lambda i: lane[i], reverse=desc)  # Python's sort is stable, reverse too
    return nans + rest if desc else rest + nans


def gen_sort():
    cf = CaseFile("sort")
    rng = np.random.default_rng(707)
    for t in ("f32", "f64", "s32", "u8", "s64", "f16"):
        is_f = t in FLOATS
        for shape, axes in (((9,), (0, -1)), ((4, 6), (0, 1, -1)), ((3, 4, 5), (1,)), ((0, 3), (0,))):
            if is_f:
                d = rng.choice([0.0, -0.0, 1.5, -2.0, 3.25, NAN, INF, -INF, 7.0, -1.0, 0.5], shape)
            else:
                lo, hi = int_range(t)
                d = np.array(rng.choice([lo, hi, 0, 1, 2, 3, 5, 100 % (hi + 1)], shape), dtype=object)
            x = A(t, d)
            x64 = x.f64() if is_f else x.a.astype(object)
            for axis in axes:
                for desc in (False, True):
                    y = np.moveaxis(x64, axis, -1)
                    order = np.zeros(y.shape, np.int64)
                    for idx in np.ndindex(y.shape[:-1]):
                        order[idx] = sort_order(list(y[idx]), desc, is_f)
                    if not desc and is_f and y.size:  # numpy agrees when ascending
                        assert np.array_equal(order, np.argsort(y, axis=-1, kind="stable")), t
                    order = np.moveaxis(order, -1, axis)
                    vals = np.take_along_axis(x.a, order, axis=axis)
                    opts = KW(axis=axis, direction=Atom("desc")) if desc else KW(axis=axis)
                    name = f"{shape_str(shape)} axis={axis}{' desc' if desc else ''}"
                    cf.add(f"sort {t} {name}", "sort", [x], Arr(t, C(vals)), opts=opts)
                    cf.add(f"argsort {t} {name}", "argsort", [x], Arr("s64", C(order)), opts=opts)
    x = A("f32", rng.normal(0, 1, (2, 1000)))  # long rows exercise the merge passes
    order = np.argsort(x.a, axis=1, kind="stable")
    cf.add("sort f32 [2,1000]", "sort", [x], Arr("f32", np.take_along_axis(x.a, order, 1)))
    cf.add("argsort f32 [2,1000] desc", "argsort", [x],
           Arr("s64", np.array([sort_order(list(r), True, True) for r in x.a.astype(np.float64)], np.int64)),
           opts=KW(direction=Atom("desc")))
    cf.write()


# ---- shape ----------------------------------------------------------------------------


def pad_ref(x, value, config):
    """Interior padding first, then low/high edges; negative edges crop (XLA's pad)."""
    for axis, (lo, hi, interior) in enumerate(config):
        n = x.shape[axis]
        if n > 0 and interior > 0:
            shape = list(x.shape)
            shape[axis] = n + (n - 1) * interior
            y = np.full(shape, value, x.dtype)
            sl = [slice(None)] * x.ndim
            sl[axis] = slice(None, None, interior + 1)
            y[tuple(sl)] = x
            x = y
        for edge, amount in (("lo", lo), ("hi", hi)):
            sl = [slice(None)] * x.ndim
            if amount > 0:
                shape = list(x.shape)
                shape[axis] = amount
                block = np.full(shape, value, x.dtype)
                x = np.concatenate([block, x] if edge == "lo" else [x, block], axis=axis)
            elif amount < 0:
                sl[axis] = slice(-amount, None) if edge == "lo" else slice(None, x.shape[axis] + amount)
                x = x[tuple(sl)]
    return C(x)


def rnd(t, shape, rng):
    if t in FLOATS:
        return A(t, rng.normal(0, 10, shape))
    lo, hi = int_range(t) if t != "bool" else (0, 1)
    if t == "bool":
        return A(t, rng.random(shape) < 0.5)
    return A(t, np.array(rng.integers(lo, hi, shape, dtype=np.int64, endpoint=t != "s64"), dtype=object))


def gen_shape():
    cf = CaseFile("shape")
    rng = np.random.default_rng(808)
    for t in ("f32", "s64", "u8", "f16", "bf16", "f64"):
        x = rnd(t, (2, 3, 4), rng)
        for new in [(4, 6), (24,), (2, Atom("auto")), (1, 24, 1), (Atom("auto"), 3, 2, 2)]:
            shp = tuple(-1 if isinstance(d, Atom) else d for d in new)
            cf.add(f"reshape {t} [2,3,4] -> {ex(new)}", "reshape", [x, new], Arr(t, x.a.reshape(shp)))
        for perm in [None, [0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], [-1, 0, 1]]:
            e = Arr(t, C(np.transpose(x.a, perm)))
            cf.add(f"transpose {t} [2,3,4] axes={perm}", "transpose", [x], e,
                   opts=KW(axes=perm) if perm is not None else None)
        for axes in [None, [0], [1], [2], [0, 2], [-1]]:
            e = Arr(t, C(np.flip(x.a, axis=None if axes is None else tuple(axes))))
            cf.add(f"reverse {t} [2,3,4] axes={axes}", "reverse", [x], e,
                   opts=KW(axes=axes) if axes is not None else None)
        for src, dst in [((3,), (2, 3)), ((3, 1), (3, 4)), ((), (2, 2)), ((1, 3), (2, 4, 3)), ((2, 1, 1), (2, 3, 4)),
                         ((3,), (0, 3))]:
            y = rnd(t, src, rng)
            cf.add(f"broadcast {t} {shape_str(src)} -> {shape_str(dst)}", "broadcast", [y, dst],
                   Arr(t, C(np.broadcast_to(y.a, dst))))
        parts = [rnd(t, (2, 3, 4), rng), rnd(t, (2, 1, 4), rng), rnd(t, (2, 0, 4), rng), rnd(t, (2, 5, 4), rng)]
        cf.add(f"concatenate {t} axis=1", "concatenate", [parts], Arr(t, np.concatenate([p.a for p in parts], 1)),
               opts=KW(axis=1))
        parts = [rnd(t, (1, 3), rng), rnd(t, (4, 3), rng)]
        cf.add(f"concatenate {t} axis=0", "concatenate", [parts], Arr(t, np.concatenate([p.a for p in parts], 0)))
        parts = [rnd(t, (2, 2), rng), rnd(t, (2, 5), rng)]
        cf.add(f"concatenate {t} axis=-1", "concatenate", [parts], Arr(t, np.concatenate([p.a for p in parts], -1)),
               opts=KW(axis=-1))
        parts = [rnd(t, (2, 3), rng) for _ in range(3)]
        for axis in (0, 1, 2, -1):
            cf.add(f"stack {t} 3x[2,3] axis={axis}", "stack", [parts],
                   Arr(t, np.stack([p.a for p in parts], axis)), opts=KW(axis=axis))
        parts = [rnd(t, (), rng) for _ in range(4)]
        cf.add(f"stack {t} 4 rank-0", "stack", [parts], Arr(t, np.stack([p.a for p in parts])))
        y = rnd(t, (5, 6), rng)
        for start, length, strides in [([1, 2], [3, 2], [1, 2]), ([-3, 0], [2, 6], None), ([0, 1], [2, 2], [3, 4]),
                                       ([4, 5], [0, 1], [1, 1]), ([0, 0], [5, 6], [1, 1]), ([2, 0], [1, 3], [2, 2])]:
            s = [st % 5 if i == 0 else st % 6 for i, st in enumerate(start)]
            k = strides or [1, 1]
            sl = tuple(slice(s[i], s[i] + (length[i] - 1) * k[i] + 1 if length[i] else s[i], k[i]) for i in range(2))
            e = Arr(t, C(y.a[sl]))
            cf.add(f"slice {t} [5,6] start={start} lengths={length} strides={strides}", "slice", [y, start, length],
                   e, opts=KW(strides=strides) if strides else None)
        v = 1.5 if t in FLOATS else 7
        for shape, config in [((3, 4), [(1, 2, 0), (0, 1, 1)]), ((3, 4), [(-1, 1, 0), (2, -2, 1)]),
                              ((5,), [(-2, -1, 3)]), ((2, 3), [(0, 0, 2), (-1, -1, 0)]), ((2, 2, 2), [(1, 0, 1)] * 3),
                              ((), []), ((0, 2), [(1, 1, 3), (0, 0, 0)]), ((4,), [(-4, 2, 0)])]:
            y = rnd(t, shape, rng)
            vv = A(t, np.array(v)).a[()]
            cf.add(f"pad {t} {shape_str(shape)} {config}", "pad", [y, v, [tuple(c) for c in config]],
                   Arr(t, pad_ref(y.a, vv, config)))
        y = rnd(t, (1, 3, 1), rng)
        cf.add(f"squeeze {t} [1,3,1]", "squeeze", [y], Arr(t, y.a.reshape(3)))
        cf.add(f"squeeze {t} [1,3,1] axes=[2]", "squeeze", [y], Arr(t, y.a.reshape(1, 3)), opts=KW(axes=[2]))
        cf.add(f"new_axis {t} [1,3,1] at -1", "new_axis", [y, -1], Arr(t, y.a.reshape(1, 3, 1, 1)))
        cf.add(f"new_axis {t} [1,3,1] at 1", "new_axis", [y, 1], Arr(t, y.a.reshape(1, 1, 3, 1)))
    x = rnd("s32", (), rng)
    cf.add("reshape s32 rank-0 -> {1, 1}", "reshape", [x, (1, 1)], Arr("s32", x.a.reshape(1, 1)))
    x = rnd("s32", (0, 3), rng)
    cf.add("reshape s32 [0,3] -> {3, 0}", "reshape", [x, (3, 0)], Arr("s32", x.a.reshape(3, 0)))
    x = rnd("f32", (5,), rng)
    cf.add("transpose f32 [5]", "transpose", [x], x)
    x = rnd("f32", (2, 0, 3), rng)
    cf.add("transpose f32 [2,0,3] axes=[2,0,1]", "transpose", [x], Arr("f32", np.transpose(x.a, [2, 0, 1]).copy()),
           opts=KW(axes=[2, 0, 1]))
    x = rnd("bool", (3, 4), rng)
    cf.add("transpose bool [3,4]", "transpose", [x], Arr("bool", x.a.T.copy()))
    x = rnd("f64", (70, 90), rng)  # larger than a transpose tile
    cf.add("transpose f64 [70,90]", "transpose", [x], Arr("f64", x.a.T.copy()))
    cf.write()


# ---- indexing -------------------------------------------------------------------------


def idx(values, shape=None):
    return A("s64", np.array(values, dtype=object), shape)


def gen_index():
    cf = CaseFile("index")
    rng = np.random.default_rng(909)
    for t in ("f32", "s64", "u8", "f64", "bf16"):
        a = rnd(t, (4, 5), rng)
        for axis, ishape in ((0, (2, 3)), (1, (2, 3)), (1, (7,)), (0, ()), (-1, (1, 1, 2)), (0, (0,))):
            n = a.shape[axis]
            i = rng.integers(0, n, ishape)
            cf.add(f"take {t} [4,5] indices {shape_str(ishape)} axis={axis}", "take", [a, idx(i)],
                   Arr(t, C(np.take(a.a, i, axis=axis))), opts=KW(axis=axis))
        for axis, ishape in ((0, (3, 5)), (1, (4, 2)), (1, (4, 7)), (-1, (4, 1))):
            i = rng.integers(0, a.shape[axis], ishape)
            cf.add(f"take_along_axis {t} [4,5] indices {shape_str(ishape)} axis={axis}", "take_along_axis",
                   [a, idx(i)], Arr(t, C(np.take_along_axis(a.a, i, axis))), opts=KW(axis=axis))
        b = rnd(t, (4, 5, 2), rng)
        for ishape in ((3, 1), (3, 2), (2, 3, 3), (4, 2), (1,), (0, 2)):
            k = ishape[-1]
            i = np.stack([rng.integers(0, b.shape[j], ishape[:-1]) for j in range(k)], -1).reshape(ishape)
            e = b.a[tuple(i[..., j] for j in range(k))]
            cf.add(f"gather {t} [4,5,2] indices {shape_str(ishape)}", "gather", [b, idx(i)],
                   Arr(t, C(e)))
        # indexed_put: in index order, so the last of repeated indices wins
        for ashape, ishape in (((5, 3), (4, 1)), ((4, 4), (6, 2)), ((6,), (5, 1)), ((2, 3, 2), (3, 2))):
            a2 = rnd(t, ashape, rng)
            k = ishape[1]
            i = np.stack([rng.integers(0, ashape[j], ishape[0]) for j in range(k)], -1)
            i[-1] = i[0]  # a repeated index
            u = rnd(t, (ishape[0],) + ashape[k:], rng)
            e = a2.a.copy()
            for r in range(ishape[0]):
                e[tuple(i[r])] = u.a[r]
            cf.add(f"indexed_put {t} {shape_str(ashape)} indices {shape_str(ishape)}", "indexed_put",
                   [a2, idx(i), u], Arr(t, e))
    # indexed_add accumulates repeats (np.add.at); float values are multiples of 1/8
    # small enough that every order of the additions is exact
    for t in ("f32", "f64", "s64", "s32", "u8"):
        for ashape, ishape in (((5, 3), (6, 1)), ((4, 4), (9, 2)), ((6,), (8, 1)), ((2, 3, 2), (5, 3)), ((3,), (0, 1))):
            k = ishape[1]
            i = np.stack([rng.integers(0, ashape[j], ishape[0]) for j in range(k)], -1).reshape(ishape)
            if ishape[0]:
                i[-1] = i[0]
            ushape = (ishape[0],) + ashape[k:]
            if t in FLOATS:
                a2, u = A(t, rng.integers(-64, 64, ashape) / 8), A(t, rng.integers(-64, 64, ushape) / 8)
            else:
                a2, u = rnd(t, ashape, rng), rnd(t, ushape, rng)
            e = a2.a.copy()
            np.add.at(e, tuple(i[:, j] for j in range(k)), u.a)  # integer adds wrap like C
            cf.add(f"indexed_add {t} {shape_str(ashape)} indices {shape_str(ishape)}", "indexed_add",
                   [a2, idx(i), u], Arr(t, e))
    cf.write()


# ---- matmul ---------------------------------------------------------------------------


def exact_matmul(a, b):
    """(exact product rounded to f64, |a| @ |b| in f64) for float64 arrays a, b (numpy matmul shapes)."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    A_ = np.broadcast_to(a2, batch + a2.shape[-2:])
    B_ = np.broadcast_to(b2, batch + b2.shape[-2:])
    m, k, n = A_.shape[-2], A_.shape[-1], B_.shape[-1]
    out = np.zeros(batch + (m, n))
    bound = np.zeros(batch + (m, n))
    for bi in np.ndindex(batch):
        for i in range(m):
            for j in range(n):
                terms = [Fraction(float(A_[bi + (i, l)])) * Fraction(float(B_[bi + (l, j)])) for l in range(k)]
                out[bi + (i, j)] = float(sum(terms, Fraction(0)))
                bound[bi + (i, j)] = float(sum((abs(x) for x in terms), Fraction(0)))
    shape = np.matmul(np.zeros(a.shape), np.zeros(b.shape)).shape
    ref = np.matmul(a, b)
    assert np.allclose(ref, out.reshape(shape), rtol=1e-9, atol=1e-9 * bound.max(initial=0))
    return out.reshape(shape), bound.reshape(shape)


def gen_matmul():
    cf = CaseFile("matmul")
    rng = np.random.default_rng(1010)
    shapes = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4, 3)), ((3, 4), (4,)),
              ((4,), (4,)), ((0, 3), (3, 2)), ((3, 0), (0, 2)), ((1, 1), (1, 1)), ((5, 2, 3), (1, 3, 6)),
              ((2, 3), (2, 3, 4)), ((3, 33), (33, 17)), ((64, 48), (48, 40))]
    for t in ("f32", "f64"):
        for sa, sb in shapes:
            a, b = A(t, rng.normal(0, 1, sa)), A(t, rng.normal(0, 1, sb))
            ref, bound = exact_matmul(a.f64(), b.f64())
            k = sa[-1]
            cf.add(f"matmul {t} {shape_str(sa)} {shape_str(sb)}", "matmul", [a, b], from_f64(ref, t),
                   aux={"abs_product": Arr("f64", C(bound)), "k": k})
    for t in ("s32", "s64", "u8"):
        for sa, sb in shapes[:8]:
            a = A(t, np.array(rng.integers(0 if t == "u8" else -9, 10, sa), dtype=object))
            b = A(t, np.array(rng.integers(0 if t == "u8" else -9, 10, sb), dtype=object))
            ref = np.matmul(a.a.astype(np.int64), b.a.astype(np.int64))
            cf.add(f"matmul {t} {shape_str(sa)} {shape_str(sb)}", "matmul", [a, b],
                   A(t, np.array(ref, dtype=object)))
    a, b = A("f32", rng.normal(0, 1, (3, 4))), A("s32", np.array(rng.integers(-3, 4, (4, 2)), dtype=object))
    ref, bound = exact_matmul(a.f64(), b.a.astype(np.float64))
    cf.add("matmul f32 s32 promotes to f32", "matmul", [a, b], from_f64(ref, "f32"),
           aux={"abs_product": Arr("f64", bound), "k": 4})
    cf.write()


# ---- creation -------------------------------------------------------------------------


def gen_creation():
    cf = CaseFile("creation")
    for t in ("s64", "f32", "u8", "f64", "s32"):
        shape = (2, 3, 4)
        for axis in (None, 0, 1, 2, -1):
            if axis is None:
                e = np.arange(24).reshape(shape)
            else:
                e = np.indices(shape)[axis % 3]
            cf.add(f"iota {t} {shape_str(shape)} axis={axis}", "iota", [shape], A(t, np.array(e, dtype=object)
                   if t not in FLOATS else e.astype(float)), opts=KW(axis=axis, type=Atom(t)) if axis is not None
                   else KW(type=Atom(t)))
    cf.add("iota s64 rank-0", "iota", [()], A("s64", np.array(0, dtype=object)))
    cf.add("iota s64 [0,3] axis=1", "iota", [(0, 3)], A("s64", np.zeros((0, 3), dtype=object)), opts=KW(axis=1))
    cf.add("iota f16 [5]", "iota", [(5,)], A("f16", np.arange(5.0)), opts=KW(type=Atom("f16")))

    def arange(start, stop, step, t):
        n = max(0, math.ceil((stop - start) / step))  # as Mx.arange computes the length
        vals = np.float64(start) + np.arange(n, dtype=np.float64) * np.float64(step)  # in double, as kernels.h
        if t not in FLOATS:
            assert np.array_equal(np.arange(start, stop, step), vals)
        else:
            assert np.allclose(np.arange(start, stop, step, dtype=np.float64), vals, rtol=1e-15, atol=1e-15)
        return from_f64(vals, t) if t in FLOATS else A(t, np.array([int(v) for v in vals], dtype=object))

    for args, t in [((5,), None), ((1, 2, 0.25), "f64"), ((0, 1, 0.1), "f32"), ((0, 1, 0.1), "f64"),
                    ((-3, 3, 0.7), "f32"), ((10, 0, -3), None), ((2.5, 9, 1.5), "f64"), ((0, 0, 1), None),
                    ((3, 1, 1), None), ((-5, 5, 1), "s32"), ((0, 10, 3), "u8"), ((1e10, 1e10 + 5, 1), "f64"),
                    ((0.5, 4, 1), "f16")]:
        start, stop, step = (0, args[0], 1) if len(args) == 1 else args
        default = "s64" if all(isinstance(v, int) for v in (start, stop, step)) else "f32"
        tt = t or default
        call = list(args) if len(args) == 3 else [args[0]]
        if len(call) == 1 and t is None:
            cf.add(f"arange {args} {tt}", "arange", call, arange(start, stop, step, tt))
        else:
            call = [start, stop, step]
            cf.add(f"arange {args} {tt}", "arange", call, arange(start, stop, step, tt),
                   opts=KW(type=Atom(t)) if t else None)
    for start, stop, n, endpoint, t in [(0, 1, 5, True, "f32"), (0, 1, 7, False, "f32"), (-1, 3, 1, True, "f64"),
                                        (5, -5, 11, True, "f64"), (0, 1, 10, True, "f64"), (0, 1, 0, True, "f32"),
                                        (0.1, 0.7, 13, True, "f32"), (0, 10, 6, True, "s64"), (1e-3, 1e3, 9, False, "f64"),
                                        (0, 1, 9, True, "bf16")]:
        vals = np.linspace(start, stop, n, endpoint=endpoint, dtype=np.float64)
        e = from_f64(vals, t) if t in FLOATS else A(t, np.array([int(v) for v in vals], dtype=object))
        cf.add(f"linspace {start} {stop} n={n} endpoint={endpoint} {t}", "linspace", [start, stop], e,
               opts=KW(n=n, endpoint=endpoint, type=Atom(t)))
    for n, m, t in [(3, None, "f32"), (2, 4, "s64"), (4, 2, "f64"), (0, None, "f32"), (1, None, "u8"), (3, 3, "bool")]:
        e = np.eye(n, m if m is not None else n)
        opts = KW(m=m, type=Atom(t)) if m is not None else KW(type=Atom(t))
        cf.add(f"eye {n} m={m} {t}", "eye", [n], A(t, e if t in FLOATS or t == "bool" else np.array(e.astype(int), dtype=object)),
               opts=opts)
    for shape, value, t in [((2, 3), 7, "u8"), ((), NAN, "f64"), ((2,), -1.5, "f16"), ((3, 1), 0.1, "f32"),
                            ((2, 2), -3, "s32"), ((4,), INF, "bf16"), ((0, 2), 1, "f32"), ((2,), 1, "bool")]:
        if t in FLOATS:
            e = from_f64(np.full(shape, float(value)), t)
        elif t == "bool":
            e = A(t, np.full(shape, bool(value)))
        else:
            e = A(t, np.full(shape, value, dtype=object))
        cf.add(f"full {shape_str(shape)} {value} {t}", "full", [shape, value], e, opts=KW(type=Atom(t)))
    cf.write()


if __name__ == "__main__":
    gen_unary()
    gen_binary()
    gen_select_clip()
    gen_as_type()
    gen_reduce()
    gen_scan()
    gen_sort()
    gen_shape()
    gen_index()
    gen_matmul()
    gen_creation()
    for w in WARNINGS:
        print("note:", w)
    print(f"{len(WARNINGS)} numpy/scipy values differ from the exact ones by more than 16 ulp (noted above)")
