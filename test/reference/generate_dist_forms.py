#!/usr/bin/python3
"""Writes test/reference/dist_forms.exs: log-masses and log-densities, and their
derivatives in the parameter, for the logit, log-rate and scale forms of Gen.Dist:
bernoulli(logits: eta), binomial(n, logits: eta), poisson(log_rate: theta) and
gamma(shape, scale: s), over grids that reach far into the tails (|eta| up to 800,
where 1 / (1 + e^-eta) rounds to 0 or 1 and a probability form scores -Inf).

Run with Debian's Python: /usr/bin/python3 test/reference/generate_dist_forms.py

A case is %{name:, fun:, args: [param arrays..., value array], expected:, aux: %{grad:}}:
the arrays are flat and aligned (row i is one (params, value) pair), `expected` the
f64 log-density and `grad` its derivative in the form's parameter (eta, theta or the
scale), both -Inf / 0 off the support. The truth is the closed form in mpmath at 50
digits; scipy.stats is cross-checked wherever it is accurate (|eta| <= 5, where
1 - expit(eta) keeps its digits; rates e^-30..e^30; every gamma case) and the
script stops if it differs by more than 1e-12.
"""
import math
import os
import sys

import mpmath as mp
import numpy as np
import scipy.special as sp
import scipy.stats as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import Arr, CaseFile  # noqa: E402

mp.mp.dps = 50
INF = math.inf


def log_sigmoid(eta):
    return -mp.log1p(mp.exp(-eta))


def sigmoid(eta):
    return 1 / (1 + mp.exp(-eta))


def integer_in(x, lo, hi):
    return x == math.floor(x) and lo <= x <= hi


def cross_check(name, args, truth, scipy_value):
    with np.errstate(all="ignore"):
        s = float(scipy_value)
    assert abs(truth - s) <= 1e-12 * max(1.0, abs(truth)), f"{name}{args}: mpmath {truth!r}, scipy {s!r}"


def add(cf, name, rows, score):
    """rows: [(params..., x)]; score(params..., x) -> (logpdf, d logpdf / d param) as floats."""
    cols = list(zip(*rows))
    out = [score(*r) for r in rows]
    cf.add(f"{name} logpdf", name, [Arr("f64", np.array(c, np.float64)) for c in cols],
           Arr("f64", np.array([o[0] for o in out], np.float64)),
           aux={"grad": Arr("f64", np.array([o[1] for o in out], np.float64))})


def bernoulli_logits(eta, x):
    if x not in (0.0, 1.0):
        return -INF, 0.0
    e = mp.mpf(eta)
    lp, g = (log_sigmoid(e), 1 - sigmoid(e)) if x == 1.0 else (log_sigmoid(-e), -sigmoid(e))
    if abs(eta) <= 5:
        cross_check("bernoulli_logits", (eta, x), float(lp), st.bernoulli.logpmf(x, sp.expit(eta)))
    return float(lp), float(g)


def binomial_logits(n, eta, x):
    if not integer_in(x, 0, n):
        return -INF, 0.0
    e, k, m = mp.mpf(eta), mp.mpf(x), mp.mpf(n)
    lp = (mp.loggamma(m + 1) - mp.loggamma(k + 1) - mp.loggamma(m - k + 1)
          + k * log_sigmoid(e) + (m - k) * log_sigmoid(-e))
    if abs(eta) <= 5:
        cross_check("binomial_logits", (n, eta, x), float(lp), st.binom.logpmf(x, n, sp.expit(eta)))
    return float(lp), float(k - m * sigmoid(e))


def poisson_log_rate(theta, x):
    if not integer_in(x, 0, INF):
        return -INF, 0.0
    t, k = mp.mpf(theta), mp.mpf(x)
    lp = k * t - mp.exp(t) - mp.loggamma(k + 1)
    if abs(theta) <= 30:
        cross_check("poisson_log_rate", (theta, x), float(lp), st.poisson.logpmf(x, math.exp(theta)))
    return float(lp), float(k - mp.exp(t))


def gamma_scale(shape, scale, x):
    if not 0 <= x < INF:
        return -INF, 0.0
    a, s, v = mp.mpf(shape), mp.mpf(scale), mp.mpf(x)
    # At x = 0 only shape 1 is in the grid: 0 · log 0 = 0 there, as scipy's xlogy.
    log_term = (a - 1) * mp.log(v) if x > 0 else 0
    lp = log_term - v / s - a * mp.log(s) - mp.loggamma(a)
    cross_check("gamma_scale", (shape, scale, x), float(lp), st.gamma.logpdf(x, shape, scale=scale))
    return float(lp), float(v / s**2 - a / s)


def main():
    cf = CaseFile("dist_forms", "generate_dist_forms.py (mpmath truth, scipy cross-checked)")
    etas = [-800.0, -40.0, -5.0, -1e-3, 0.0, 0.7, 5.0, 40.0, 800.0]

    add(cf, "bernoulli_logits", [(e, x) for e in etas for x in [0.0, 1.0, 2.0, 0.5]], bernoulli_logits)

    add(cf, "binomial_logits",
        [(n, e, x) for n in [1.0, 10.0, 100.0] for e in [-700.0, -30.0, -2.0, 0.0, 1.5, 30.0, 700.0]
         for x in sorted({0.0, 1.0, math.floor(n / 2), n, n + 1, -1.0, 0.5})],
        binomial_logits)

    add(cf, "poisson_log_rate",
        [(t, x) for t in [-700.0, -30.0, -1.0, 0.0, 2.5, 50.0, 700.0]
         for x in [0.0, 1.0, 3.0, 100.0, 1e6, -1.0, 1.5]],
        poisson_log_rate)

    add(cf, "gamma_scale",
        [(a, s, x) for a, s in [(1.0, 1.0), (0.3, 0.5), (2.0, 1 / 3), (7.5, 100.0), (500.0, 0.02)]
         for x in [-1.0, 0.0, 1e-300, 1e-8, 0.1, 1.0, 2.7, 10.0, 1e4, INF] if x != 0.0 or a == 1.0],
        gamma_scale)

    cf.write()


if __name__ == "__main__":
    main()
