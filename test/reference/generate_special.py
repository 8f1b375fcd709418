#!/usr/bin/python3
"""Writes test/reference/special.exs: reference cases for Mx's special functions
(trigamma/polygamma, erfc, log_ndtr, ndtri, igamma, igammac, betainc, betaln,
log1mexp, xlogy, xlog1py), in the format of generate.py (refdata.py writes it).

Run with Debian's Python: /usr/bin/python3 test/reference/generate_special.py

Truth is mpmath at 60 digits, rounded to f64 (and then to f32 for f32 cases,
whose inputs are the f32-rounded values). mpmath's gammainc and betainc stall
for large parameters, so the incomplete functions are summed here at that
precision with their series and continued fractions (exact algorithms, only
slow). Every value is cross-checked against scipy.special 1.10; where scipy is
off by more than 1e-13 relative a note is printed (they are scipy's errors:
e.g. gammainc near a = x for a ~ 1e6, betainc for a + b ~ 1e6).

Special values (NaN, infinities, domain edges) follow scipy, except
trigamma(-inf), which is NaN as Mx's digamma(-inf) (scipy says +inf).

aux.scale (where given) is the magnitude of the terms a result is formed
from when they cancel (betaln near its zeros); the tolerance rule in
test/support/reference_case.ex uses it.
"""
import math
import os
import sys

import mpmath as mp
import numpy as np
import scipy.special as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import A, from_f64  # noqa: E402
from refdata import Arr, CaseFile  # noqa: E402

mp.mp.dps = 60
INF, NAN = math.inf, math.nan
NOTES = []


def crosscheck(name, args, truth, theirs):
    for i in range(truth.size):
        t, s = truth.flat[i], theirs.flat[i]
        if (math.isnan(t) and math.isnan(s)) or t == s:
            continue
        if not (math.isfinite(t) and math.isfinite(s)) or abs(t - s) > 1e-13 * abs(t) * max(1, abs(math.log(abs(t)) if t else 1)):
            NOTES.append(f"{name}{tuple(float(a.flat[i]) for a in args)}: exact {t!r}, scipy {s!r}")


def evaluate(name, exact, scipy_fun, *args):
    """exact(*mpf args) -> mpf or a float special value, per element, rounded to f64."""
    args = np.broadcast_arrays(*[np.asarray(a, np.float64) for a in args])
    out = np.empty(args[0].shape)
    for i in range(out.size):
        v = exact(*[float(a.flat[i]) for a in args])
        out.flat[i] = float(v)
    with np.errstate(all="ignore"):
        crosscheck(name, args, out, np.asarray(scipy_fun(*args), np.float64))
    return out


# ---- exact functions (float in, mpf or float special value out) ------------------------------


def trigamma(x):
    if math.isnan(x) or x == -INF:
        return NAN
    if x == INF:
        return 0.0
    if x <= 0 and x == math.floor(x):
        return INF
    return mp.psi(1, x)


def erfc(x):
    return float(sp.erfc(x)) if not math.isfinite(x) else mp.erfc(x)


def log_ndtr(x):
    if math.isnan(x):
        return NAN
    if math.isinf(x):
        return -0.0 if x > 0 else -INF
    X = mp.mpf(x)
    return mp.log(mp.ncdf(X)) if x <= 0 else mp.log1p(-mp.ncdf(-X))


def ndtri(p):
    if math.isnan(p) or p < 0 or p > 1:
        return NAN
    if p == 0:
        return -INF
    if p == 1:
        return INF
    P = mp.mpf(p)
    x = mp.mpf(float(sp.ndtri(p)))
    for _ in range(8):  # Newton from scipy's value; quadratic, 60 digits
        x -= (mp.ncdf(x) - P) / mp.npdf(x)
    return x


def _gamma_series(a, x):  # sum x^n / ((a+1)...(a+n)), all terms positive
    term = s = mp.mpf(1)
    n = 1
    while True:
        term *= x / (a + n)
        s += term
        n += 1
        if term < s * mp.mpf(10) ** (-mp.mp.dps):
            return s


def _gamma_cf(a, x):  # Legendre's continued fraction for Q / prefix (x >= a + 1), modified Lentz
    tiny = mp.mpf(10) ** (-4 * mp.mp.dps)
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h, i = d, 1
    while True:
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        i += 1
        if abs(delta - 1) < mp.mpf(10) ** (-mp.mp.dps):
            return h


def gamma_pq(a, x):
    """(P, Q) exactly, or scipy's special values."""
    if math.isnan(a) or math.isnan(x) or a < 0 or x < 0 or (a == 0 and x == 0) or (math.isinf(a) and math.isinf(x)):
        return NAN, NAN
    if a == 0 or x == INF:
        return 1.0, 0.0
    if x == 0 or a == INF:
        return 0.0, 1.0
    A_, X = mp.mpf(a), mp.mpf(x)
    if X < A_ + 1:
        p = mp.exp(A_ * mp.log(X) - X - mp.loggamma(A_ + 1)) * _gamma_series(A_, X)
        return p, 1 - p
    q = mp.exp(A_ * mp.log(X) - X - mp.loggamma(A_)) * _gamma_cf(A_, X)
    return 1 - q, q


def _beta_cf(a, b, x):  # Numerical Recipes' betacf at full precision
    tiny = mp.mpf(10) ** (-4 * mp.mp.dps)
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = mp.mpf(1), 1 - qab * x / qap
    d = 1 / (tiny if abs(d) < tiny else d)
    h, m = d, 1
    while True:
        for aa in (m * (b - m) * x / ((qam + 2 * m) * (a + 2 * m)),
                   -(a + m) * (qab + m) * x / ((a + 2 * m) * (qap + 2 * m))):
            d = 1 + aa * d
            d = 1 / (tiny if abs(d) < tiny else d)
            c = 1 + aa / c
            c = tiny if abs(c) < tiny else c
            delta = d * c
            h *= delta
        m += 1
        if abs(delta - 1) < mp.mpf(10) ** (-mp.mp.dps):
            return h


def betainc(a, b, x):
    if any(math.isnan(v) for v in (a, b, x)) or x < 0 or x > 1 or a <= 0 or b <= 0 or math.isinf(a) or math.isinf(b):
        return NAN
    if x in (0.0, 1.0):
        return x
    A_, B_, X = mp.mpf(a), mp.mpf(b), mp.mpf(x)
    lb = mp.loggamma(A_) + mp.loggamma(B_) - mp.loggamma(A_ + B_)
    if X < (A_ + 1) / (A_ + B_ + 2):
        return mp.exp(A_ * mp.log(X) + B_ * mp.log1p(-X) - lb) / A_ * _beta_cf(A_, B_, X)
    Y = 1 - X
    return 1 - mp.exp(B_ * mp.log(Y) + A_ * mp.log(X) - lb) / B_ * _beta_cf(B_, A_, Y)


def betaln(a, b):
    if math.isnan(a) or math.isnan(b):
        return NAN
    if a == 0 or b == 0:
        return INF
    return mp.re(mp.loggamma(a)) + mp.re(mp.loggamma(b)) - mp.re(mp.loggamma(mp.mpf(a) + b))


def betaln_scale(a, b):
    """Magnitudes of the terms Mx's betaln adds (lgamma's, or Stirling's form past 10)."""
    p, q = min(a, b), max(a, b)
    if not (p > 0 and math.isfinite(q)):
        return 0.0
    P, Q = mp.mpf(p), mp.mpf(q)
    S = P + Q
    if q < 10:
        return float(abs(mp.loggamma(P)) + abs(mp.loggamma(Q)) + abs(mp.loggamma(S)))
    r = abs(mp.log1p(-P / S))
    if p < 10:
        return float(abs(mp.loggamma(P)) + P + P * mp.log(S) + Q * r)
    return float(1 + mp.log(Q) + abs((P - 0.5) * mp.log(P / S)) + Q * r)


def log1mexp(x):
    if math.isnan(x):
        return NAN
    a = abs(mp.mpf(x))
    if a == 0:
        return -INF
    if math.isinf(x):
        return -0.0
    return mp.log(-mp.expm1(-a)) if a < 1 else mp.log1p(-mp.exp(-a))


def log1mexp_np(x):
    a = np.abs(x)
    return np.where(a <= math.log(2), np.log(-np.expm1(-a)), np.log1p(-np.exp(-a)))


def xlog(shift):
    def f(x, y):
        if math.isnan(x) or math.isnan(y):
            return NAN
        if x == 0:
            return 0.0
        Y = mp.mpf(y) + shift  # the argument of the log, exactly (mpf adds at full precision here)
        if Y < 0 or math.isinf(x):
            return float(np.float64(x) * (np.log(np.float64(y)) if shift == 0 else np.log1p(np.float64(y))))
        if Y == 0:
            return -INF if x > 0 else INF
        if math.isinf(y):
            return INF if x > 0 else -INF
        return x * (mp.log(mp.mpf(y)) if shift == 0 else mp.log1p(mp.mpf(y)))
    return f


# ---- inputs ----------------------------------------------------------------------------------


def logu(rng, lo, hi, n):
    return list(np.exp(rng.uniform(math.log(lo), math.log(hi), n)))


def unary_cases(rng):
    specials = [NAN, INF, -INF, 0.0, -0.0]
    return {
        "trigamma": specials + [1.0, 0.5, 2.0, 1e-8, 1e-300, 10.0, 1e8, 1e300, -0.5, -1.0, -2.0, -1.5, -2.999999,
                                -100.25] + logu(rng, 1e-6, 1e6, 40) + list(rng.uniform(-30, 0, 30)),
        "erfc": specials + [1.0, -1.0, 0.5, 5.0, 10.0, 26.0, 27.0, 27.3, -6.0, 1e-20]
                + list(rng.uniform(-6, 27, 50)),
        "log_ndtr": specials + [1.0, -1.0, 5.0, 8.0, 10.0, 20.0, 37.0, 38.0, 40.0, -5.0, -19.999, -20.0, -20.001,
                                -30.0, -38.0, -40.0, -100.0, -1e5, -1e10, 1e-20, -1e-20]
                    + list(rng.uniform(-40, 40, 40)) + [-v for v in logu(rng, 1, 1e10, 15)],
        "ndtri": specials + [0.5, 0.25, 0.75, 0.975, 0.025, 1.0, -0.1, 1.1, 1e-300, 5e-324, 1e-10, 1 - 1e-10,
                             0.5 + 1e-12, 0.5 - 1e-12, 0.9999999999999999, 1.1102230246251565e-16]
                 + list(rng.uniform(0, 1, 40)) + logu(rng, 1e-300, 0.5, 30),
        "log1mexp": specials + [1e-300, 1e-20, 1e-8, 0.5, 0.6931471805599453, 0.6931471805599454, 1.0, 10.0, 37.0,
                                50.0, 700.0, 745.0, 800.0, -1e-20, -1.0, -50.0]
                    + logu(rng, 1e-10, 100, 30) + [-v for v in logu(rng, 1e-10, 100, 10)],
    }


def igamma_inputs(rng):
    a = [1.0, 1.0, 2.0, 0.5, 0.0, 0.0, -1.0, 1.0, NAN, 1.0, INF, INF, 1.0, 3.0, 1e-10, 20.0, 20.5, 100.0, 1e4, 1e6,
         1e6, 1e6, 1e7, 30.0, 50.0]
    x = [0.0, INF, 1.0, 0.5, 1.0, 0.0, 1.0, -1.0, 1.0, NAN, 1.0, INF, 700.0, 1e-300, 1e-5, 20.0, 12.0, 100.0,
         10100.0, 1e6 - 1000.0, 1e6 + 1000.0, 6e5, 1e7 + 1.0, 12.0, 75.0]
    for lo, hi, xlo, xhi, n in [(1e-10, 1, 1e-10, 50, 30), (1, 30, 1e-3, 100, 30), (20, 1e7, 0.5, 1.5, 30),
                                (20, 1e5, 1e-3, 10, 20), (1e-3, 1e3, 1e-3, 1e3, 20)]:
        aa = logu(rng, lo, hi, n)
        a += aa
        x += [ai * r for ai, r in zip(aa, logu(rng, xlo, xhi, n))] if lo >= 20 else logu(rng, xlo, xhi, n)
    return np.array(a), np.array(x)


def betainc_inputs(rng):
    a = [1.0, 2.0, 2.0, 2.0, 0.5, 0.0, 1.0, 1.0, -1.0, INF, 1.0, NAN, 1.0, 1.0, 1e-3, 1.6, 3.67, 0.5, 258.7, 18.8,
         1e5, 5.0, 0.53]
    b = [1.0, 3.0, 3.0, 3.0, 0.5, 1.0, 0.0, 1.0, 1.0, 1.0, INF, 1.0, NAN, 1.0, 1e-3, 0.00216, 0.00184, 1e-6, 94405.0,
         283598.0, 1e5, 1e6, 47262.7]
    x = [0.5, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, -0.1, 0.5, 0.5, 0.5, 0.5, 0.5, NAN, 0.5, 0.856, 0.99952, 0.9999,
         0.0028055, 8.225e-05, 0.5, 5e-6, 3.73e-05]
    for alo, ahi, blo, bhi, n in [(1e-3, 10, 1e-3, 10, 40), (1e-2, 10, 10, 1e5, 20), (10, 1e5, 1e-2, 10, 20),
                                  (10, 1e6, 10, 1e6, 30)]:
        aa, bb = logu(rng, alo, ahi, n), logu(rng, blo, bhi, n)
        a += aa
        b += bb
        for ai, bi in zip(aa, bb):
            if ai >= 10 and bi >= 10:  # around the mean, within 5 sd
                s = ai + bi
                m, sd = ai / s, math.sqrt(ai * bi / (s * s * (s + 1)))
                x.append(float(np.clip(rng.normal(m, 2 * sd), max(m - 5 * sd, 1e-300), min(m + 5 * sd, 1 - 1e-16))))
            else:
                x.append(float(rng.uniform(0, 1)) if rng.uniform() < 0.7 else float(10 ** rng.uniform(-12, -1)))
    return np.array(a), np.array(b), np.array(x)


# ---- cases -----------------------------------------------------------------------------------

UNARY = {"trigamma": (trigamma, lambda x: sp.polygamma(1, x)), "erfc": (erfc, sp.erfc),
         "log_ndtr": (log_ndtr, sp.log_ndtr), "ndtri": (ndtri, sp.ndtri), "log1mexp": (log1mexp, log1mexp_np)}


def f32(v):
    return np.asarray(v, np.float64).astype(np.float32).astype(np.float64)


def main():
    cf = CaseFile("special")
    rng = np.random.default_rng(2024)
    inputs = unary_cases(rng)
    for op, (exact, theirs) in UNARY.items():
        x64 = np.array(inputs[op], np.float64)
        for t in ("f64", "f32"):
            x = x64 if t == "f64" else f32(x64)
            e = evaluate(f"{op}[{t}]", exact, theirs, x)
            cf.add(f"{op} {t} [{x.size}]", op, [A(t, x)], from_f64(e, t))
    x = A("s32", [1, 2, 3])
    cf.add("trigamma s32 [3] computes in f32", "trigamma", [x], from_f64(evaluate("trigamma", trigamma, lambda v: sp.polygamma(1, v), [1.0, 2.0, 3.0]), "f32"))
    for n, fun in [(0, "digamma"), (1, "trigamma")]:
        xs = np.array([0.5, 1.0, 7.25, -1.5])
        e = evaluate(f"polygamma({n})", lambda v: mp.psi(n, v), lambda v: sp.polygamma(n, v), xs)
        cf.add(f"polygamma {n} f64 [4]", "polygamma", [n, A("f64", xs)], from_f64(e, "f64"))

    a, x = igamma_inputs(rng)
    for k, (op, scipy_fun) in enumerate([("igamma", sp.gammainc), ("igammac", sp.gammaincc)]):
        for t in ("f64", "f32"):
            at, xt = (a, x) if t == "f64" else (f32(a), f32(x))
            e = evaluate(f"{op}[{t}]", lambda ai, xi, k=k: gamma_pq(ai, xi)[k], scipy_fun, at, xt)
            cf.add(f"{op} {t} [{at.size}]", op, [A(t, at), A(t, xt)], from_f64(e, t))
        ab = np.array([[0.5], [3.0], [40.0]])
        xb = np.array([0.1, 1.0, 4.0, 45.0])
        e = evaluate(f"{op}[bcast]", lambda ai, xi, k=k: gamma_pq(ai, xi)[k], scipy_fun, ab, xb)
        cf.add(f"{op} f64 [3,1] [4]", op, [A("f64", ab), A("f64", xb)], from_f64(e, "f64"))

    a, b, x = betainc_inputs(rng)
    for t in ("f64", "f32"):
        at, bt, xt = (a, b, x) if t == "f64" else (f32(a), f32(b), f32(x))
        e = evaluate(f"betainc[{t}]", betainc, sp.betainc, at, bt, xt)
        cf.add(f"betainc {t} [{at.size}]", "betainc", [A(t, at), A(t, bt), A(t, xt)], from_f64(e, t))
    ab, bb, xb = np.array([[0.5], [2.0]]), np.array([1.0, 4.0, 30.0]), np.array([[[0.2]], [[0.7]]])
    e = evaluate("betainc[bcast]", betainc, sp.betainc, ab, bb, xb)
    cf.add("betainc f64 [2,1] [3] [2,1,1]", "betainc", [A("f64", ab), A("f64", bb), A("f64", xb)], from_f64(e, "f64"))

    pa = [1.0, 1.0, 2.0, 0.5, 0.0, NAN, 1e10, 1e10, 1e-3, 10.0, 9.99, 1e300, 3.0, 0.2, 0.1]
    pb = [1.0, 2.0, 3.0, 0.5, 1.0, 1.0, 1.0, 1e10, 1e5, 10.0, 10.01, 1e300, 1.0 / 3.0, 5.5, 20.0]
    pa += logu(rng, 1e-3, 1e10, 40)
    pb += logu(rng, 1e-3, 1e10, 40)
    pa, pb = np.array(pa), np.array(pb)
    for t in ("f64", "f32"):
        at, bt = (pa, pb) if t == "f64" else (f32(pa), f32(pb))
        e = evaluate(f"betaln[{t}]", betaln, sp.betaln, at, bt)
        scale = np.array([betaln_scale(float(u), float(v)) for u, v in zip(at, bt)])
        cf.add(f"betaln {t} [{at.size}]", "betaln", [A(t, at), A(t, bt)], from_f64(e, t), aux={"scale": Arr("f64", scale)})

    # x log y: x == 0 gives 0 (but NaN for NaN y), y = 0 gives -inf, y < 0 NaN; xlog1py shifts y by -1.
    xs = [0.0, 0.0, 0.0, 0.0, 2.0, -3.0, 1.5, 2.0, 1.0, 1.0, -1.0, NAN, 1e-300, 1e300, 5.0]
    ys = [0.0, 1.0, NAN, -1.0, 0.0, 0.0, -1.0, INF, 1.0, 1e-300, 1e300, 2.0, 0.5, 0.5, 1.0 + 2**-52]
    xs = np.array(xs + list(rng.uniform(-10, 10, 20)))
    ys = np.array(ys + logu(rng, 1e-10, 1e10, 20))
    ys1 = np.array([-1.0, 0.0, NAN, -2.0, -1.0, -1.0, -2.0, INF, 0.0, 1e-300, 1e300, 2.0, -0.5, -0.5, 2**-52]
                   + logu(rng, 1e-10, 1e10, 10) + list(rng.uniform(-1, 1, 10)))
    for op, shift, ys_op, theirs in [("xlogy", 0, ys, sp.xlogy), ("xlog1py", 1, ys1, sp.xlog1py)]:
        for t in ("f64", "f32"):
            xt, yt = (xs, ys_op) if t == "f64" else (f32(xs), f32(ys_op))
            e = evaluate(f"{op}[{t}]", xlog(shift), theirs, xt, yt)
            cf.add(f"{op} {t} [{xt.size}]", op, [A(t, xt), A(t, yt)], from_f64(e, t))
    cf.write()
    for n in NOTES:
        print("note:", n)
    print(f"{len(NOTES)} scipy values differ from the exact ones by more than 1e-13 relative (noted above)")


if __name__ == "__main__":
    main()
