#!/usr/bin/python3
"""Writes test/reference/dist_continuous.exs: log-densities of Gen.Dist's continuous
distributions from scipy.stats (1.10), in f64, over grids of parameters and values
that include points outside the support, the support's edges and far tails.

Run with Debian's Python: /usr/bin/python3 test/reference/generate_dist.py

A case is %{name:, fun: constructor, args: [param arrays..., value array], expected:};
the arrays are flat and aligned (row i is one (params, value) pair), and
test/gen/dist_continuous_test.exs calls Gen.Dist.<fun>(params...) |> logpdf(value).
Parameterizations map onto scipy's as the module docs of lib/gen/dist/*.ex say.

Where scipy.stats 1.10 loses accuracy, the truth is the closed form in mpmath at
50 digits and scipy is only cross-checked (differences are printed): Student's t
for large df (lgamma((df+1)/2) - lgamma(df/2) cancels: 8e-7 off at df = 1e9) and
far tails (x² overflows), Cauchy's far tails (x² overflows to -inf), and the
Laplace tails (scipy takes log(pdf), which underflows to -inf past |x|/scale ≈ 745).
"""
import math
import os
import sys

import mpmath as mp
import numpy as np
import scipy.stats as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import Arr, CaseFile  # noqa: E402

INF = math.inf


def rows(param_sets, values_for):
    """Flat aligned columns: one row per (param set, value of values_for(params))."""
    cols, xs = [], []
    for p in param_sets:
        for x in values_for(*p):
            cols.append(p)
            xs.append(x)
    return [np.array(c, np.float64) for c in zip(*cols)], np.array(xs, np.float64)


mp.mp.dps = 50
NOTES = []


def exact(f):
    """A logpdf from an mpmath closed form valid inside the support (-inf at infinite x)."""
    def g(*args):
        x = args[-1]
        if math.isinf(x):
            return -INF
        return float(f(*[mp.mpf(a) for a in args]))
    return g


def checked(name, truth, scipy_logpdf):
    """truth, with a note where scipy differs from it by more than 1e-10."""
    def g(*args):
        t = truth(*args)
        with np.errstate(all="ignore"):
            s = float(scipy_logpdf(*args))
        if not (t == s or abs(t - s) <= 1e-10 * max(1.0, abs(t))):
            NOTES.append(f"{name}{args}: exact {t!r}, scipy {s!r}")
        return t
    return g


def add(cf, name, param_sets, values_for, logpdf):
    params, x = rows(param_sets, values_for)
    with np.errstate(all="ignore"):
        expected = np.array([logpdf(*[float(p[i]) for p in params], float(x[i])) for i in range(x.size)], np.float64)
    # scipy gives NaN for some densities at x = ±inf (inf/inf inside); every density here tends to 0 there.
    expected[np.isnan(expected) & np.isinf(x)] = -INF
    assert not np.isnan(expected).any(), (name, expected)
    cf.add(f"{name} logpdf", name, [Arr("f64", p) for p in params] + [Arr("f64", x)], Arr("f64", expected))


def main():
    cf = CaseFile("dist_continuous", "generate_dist.py (scipy.stats references)")

    common = [-INF, -1e10, -37.5, -3.0, -1.0, -0.1, 0.0, 0.3, 1.0, 2.5, 8.0, 40.0, 1e5, INF]
    add(cf, "normal", [(0.0, 1.0), (1.5, 0.01), (-3.0, 250.0), (1e6, 1e-3)],
        lambda m, s: common + [m + 0.5 * s, m - 30 * s],
        lambda m, s, x: st.norm.logpdf(x, m, s))

    add(cf, "uniform", [(0.0, 1.0), (-2.5, 7.0), (1e-3, 2e-3), (-1e6, 1e6)],
        lambda lo, hi: [lo - 1.0, lo, (lo + hi) / 2, hi, hi + 1e-9, -INF, INF],
        lambda lo, hi, x: st.uniform.logpdf(x, lo, hi - lo))

    unit = [-1.0, -1e-300, 0.0, 1e-300, 1e-12, 0.01, 0.3, 0.5, 0.9, 1.0 - 1e-12, 1.0, 1.0 + 1e-9, 2.0, -INF, INF]
    add(cf, "beta", [(1.0, 1.0), (0.5, 0.5), (2.0, 3.0), (1.0, 5.0), (0.01, 200.0), (300.0, 400.0), (2.5, 1.0)],
        lambda a, b: unit,
        lambda a, b, x: st.beta.logpdf(x, a, b))

    pos = [-1.0, -1e-300, 0.0, 1e-300, 1e-8, 0.1, 1.0, 2.7, 10.0, 100.0, 1e4, INF, -INF]
    add(cf, "gamma", [(1.0, 1.0), (0.3, 2.0), (2.0, 3.0), (7.5, 0.01), (500.0, 50.0)],
        lambda k, r: pos,
        lambda k, r, x: st.gamma.logpdf(x, k, scale=1.0 / r))

    add(cf, "inv_gamma", [(1.0, 1.0), (0.3, 2.0), (3.0, 2.0), (7.5, 0.01), (500.0, 50.0)],
        lambda k, s: pos,
        lambda k, s, x: st.invgamma.logpdf(x, k, scale=s))

    add(cf, "exponential", [(1.0,), (0.01,), (30.0,)],
        lambda r: pos,
        lambda r, x: st.expon.logpdf(x, scale=1.0 / r))

    add(cf, "laplace", [(0.0, 1.0), (3.0, 0.05), (-1e4, 300.0)],
        lambda m, s: common + [m, m + 1e-3 * s],
        checked("laplace", exact(lambda m, s, x: -mp.log(2 * s) - abs(x - m) / s),
                lambda m, s, x: st.laplace.logpdf(x, m, s)))

    add(cf, "student_t", [(1.0, 0.0, 1.0), (0.5, 2.0, 3.0), (3.0, 1.0, 2.0), (30.0, -1.0, 0.1), (1e5, 0.0, 1.0), (1e9, 5.0, 2.0)],
        lambda df, m, s: [-1e100, -1e10, -37.5, -3.0, -1.0, 0.0, 0.3, 1.0, 2.5, 8.0, 40.0, 1e5, 1e150, m],
        checked("student_t", exact(lambda df, m, s, x: mp.loggamma((df + 1) / 2) - mp.loggamma(df / 2)
                                   - mp.log(df * mp.pi) / 2 - mp.log(s)
                                   - (df + 1) / 2 * mp.log1p(((x - m) / s) ** 2 / df)),
                lambda df, m, s, x: st.t.logpdf(x, df, m, s)))

    add(cf, "log_normal", [(0.0, 1.0), (2.0, 0.25), (-5.0, 3.0)],
        lambda m, s: pos + [math.exp(m)],
        lambda m, s, x: st.lognorm.logpdf(x, s, scale=math.exp(m)))

    add(cf, "cauchy", [(0.0, 1.0), (2.0, 0.001), (-50.0, 40.0)],
        lambda m, s: common[1:-1] + [1e100, -1e200, m],
        checked("cauchy", exact(lambda m, s, x: -mp.log(mp.pi * s) - mp.log1p(((x - m) / s) ** 2)),
                lambda m, s, x: st.cauchy.logpdf(x, m, s)))

    def tn(m, s, lo, hi, x):
        return st.truncnorm.logpdf(x, (lo - m) / s, (hi - m) / s, m, s)

    add(cf, "truncated_normal",
        [(0.0, 1.0, -1.0, 2.0), (0.0, 1.0, 0.0, INF), (0.0, 1.0, -INF, -3.0), (1.0, 2.0, 9.0, 12.0),
         (0.0, 1.0, 8.0, 8.5), (0.0, 1.0, -30.0, -29.0), (0.0, 1.0, 40.0, INF), (5.0, 0.5, -INF, INF),
         (0.0, 1.0, -0.1, 0.1)],
        lambda m, s, lo, hi: [lo - 1.0, lo, hi, hi + 1.0, m,
                              (lo + hi) / 2 if math.isfinite(lo + hi) else (lo + 0.5 if math.isfinite(lo) else hi - 0.5),
                              lo + 1e-3 if math.isfinite(lo) else hi - 1e-3, -INF, INF],
        tn)

    # broadcasted_normal scores the sum over its event: one row per case here is a
    # one-element event, so the elementwise grid above covers it; the test checks the sum.
    cf.write()
    for n in NOTES:
        print("note:", n)


if __name__ == "__main__":
    main()
