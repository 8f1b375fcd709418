#!/usr/bin/python3
"""Writes test/gen/data/diagnostics.exs: MCMC diagnostics of fixed AR(1) chains,
computed step by step from the equations of Vehtari, Gelman, Simpson, Carpenter
and Bürkner (2021), "Rank-normalization, folding, and localization: An improved
R-hat for assessing convergence of MCMC" (Bayesian Analysis 16(2)), for
test/gen/diagnostics_test.exs (Gen.Diagnostics). Written from the paper, not from
ArviZ (not installed here); the conventions the paper leaves open follow Stan and
ArviZ: split chains drop the middle draw when the draw count is odd, ranks of
ties are averaged, autocovariances are the biased (1/n) estimates, quantiles are
numpy's default (type 7), and τ is floored at 1/log10(S).

Run with Debian's Python: /usr/bin/python3 test/reference/generate_diagnostics.py

A case is %{name:, samples: {:array, :f64, shape, hex}, expected: %{...}} with
the expected floats of mean, sd, q5, q50, q95, ess_bulk, ess_tail, rhat_bulk,
rhat_tail and rhat. The data file lives in test/gen/data/ because every file in
test/reference/ is an Mx op reference run by Mx.ReferenceCase.
"""
import os
import sys

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import Arr, ex  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gen", "data", "diagnostics.exs")


def split(x):
    """Eq. before (4): each chain's first and second halves as separate chains."""
    h = x.shape[1] // 2
    return np.concatenate([x[:, :h], x[:, x.shape[1] - h:]], axis=0)


def z_scale(x):
    """Eq. (14): normal scores of the fractional pooled ranks, ties averaged."""
    r = rankdata(x, method="average").reshape(x.shape)
    return ndtri((r - 3.0 / 8.0) / (x.size + 1.0 / 4.0))


def var_plus_and_w(x):
    """Eqs. (1)-(3): B/n and W, and var+ = (n-1)/n W + B/n."""
    n = x.shape[1]
    b_over_n = np.var(x.mean(axis=1), ddof=1) if x.shape[0] > 1 else 0.0
    w = np.mean(np.var(x, axis=1, ddof=1))
    return (n - 1) / n * w + b_over_n, w


def rhat(x):
    """Eq. (4) on chains already split (and transformed)."""
    vp, w = var_plus_and_w(x)
    return np.sqrt(vp / w)


def ess(x):
    """Eqs. (10)-(13) on chains already split: combined autocorrelations from the
    biased per-chain autocovariances, truncated by Geyer's initial positive
    sequence and made monotone (Geyer's initial monotone sequence)."""
    m, n = x.shape
    c = x - x.mean(axis=1, keepdims=True)
    # Autocovariance at lag t, averaged over chains; computed once for every lag.
    acov = np.array([np.mean([np.dot(ch[: n - t], ch[t:]) / n for ch in c]) for t in range(n)])
    w = acov[0] * n / (n - 1)                 # mean of the chains' unbiased variances
    vp = w * (n - 1) / n + (np.var(x.mean(axis=1), ddof=1) if m > 1 else 0.0)
    rho = 1.0 - (w - acov) / vp               # eq. (10)
    # Pairs P_k = rho[2k] + rho[2k+1]; sum while positive (Geyer 1992).
    # rho[0] from eq. (10) is 1 - W/(n var+) ≠ 1; the autocorrelation at lag 0 is 1 by definition.
    kept = [1.0, rho[1]]
    t = 1
    even, odd = 1.0, rho[1]
    while t < n - 3 and even + odd > 0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0:
            kept += [even, odd]
        t += 2
    max_t = t - 2
    # Stan's improvement: the first even lag past the last kept pair, when positive.
    extra = even if even > 0 else 0.0
    r = np.array(kept[: max_t + 1])
    # Monotone: each pair no larger than the one before.
    for k in range(2, max_t, 2):
        if r[k] + r[k + 1] > r[k - 2] + r[k - 1]:
            r[k] = r[k + 1] = (r[k - 2] + r[k - 1]) / 2
    tau = -1.0 + 2.0 * r.sum() + extra        # eq. (13)
    s = m * n
    tau = max(tau, 1.0 / np.log10(s))
    return s / tau


def diagnostics(x):
    q5, q50, q95 = np.quantile(x, [0.05, 0.5, 0.95])
    tail = min(ess(split((x <= q5).astype(float))), ess(split((x <= q95).astype(float))))
    rb = rhat(z_scale(split(x)))
    rt = rhat(z_scale(split(np.abs(x - np.median(x)))))
    return {"mean": x.mean(), "sd": x.std(ddof=1), "q5": q5, "q50": q50, "q95": q95,
            "ess_bulk": ess(z_scale(split(x))), "ess_tail": tail,
            "rhat_bulk": rb, "rhat_tail": rt, "rhat": max(rb, rt)}


def ar1(rng, chains, draws, phi, offsets=None):
    """Stationary AR(1) chains with unit marginal variance."""
    x = np.empty((chains, draws))
    x[:, 0] = rng.standard_normal(chains)
    e = rng.standard_normal((chains, draws)) * np.sqrt(1 - phi ** 2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x + (0.0 if offsets is None else np.asarray(offsets)[:, None])


def main():
    rng = np.random.default_rng(20211)
    cases = [
        ("iid normal, 4 x 1000", ar1(rng, 4, 1000, 0.0)),
        ("AR(1) phi 0.5, 4 x 1000", ar1(rng, 4, 1000, 0.5)),
        ("AR(1) phi 0.9, 4 x 1000", ar1(rng, 4, 1000, 0.9)),
        ("AR(1) phi -0.3 (antithetic), 4 x 1000", ar1(rng, 4, 1000, -0.3)),
        ("poorly mixed: shifted chains, 4 x 1000", ar1(rng, 4, 1000, 0.5, [0.0, 0.0, 1.0, 2.5])),
        ("odd draw count, 3 x 101, phi 0.7", ar1(rng, 3, 101, 0.7)),
        ("ties: rounded AR(1) phi 0.6, 4 x 500", np.round(ar1(rng, 4, 500, 0.6) * 2)),
        ("exponential scale, 2 x 400", np.exp(2 * ar1(rng, 2, 400, 0.3))),
    ]
    single = ar1(rng, 1, 1000, 0.5)
    out = []
    for name, x in cases:
        d = diagnostics(x)
        out.append({"name": name, "samples": Arr("f64", x), "expected": d})
        print(name, {k: round(float(v), 4) for k, v in d.items()})
    d = diagnostics(single)
    out.append({"name": "one chain given as [draws], 1000, phi 0.5", "samples": Arr("f64", single[0]), "expected": d})
    print("single", {k: round(float(v), 4) for k, v in d.items()})
    assert out[4]["expected"]["rhat"] > 1.1
    with open(OUT, "w") as f:
        f.write("# Generated by test/reference/generate_diagnostics.py (numpy/scipy); do not edit.\n[\n")
        f.write(",\n".join("  " + ex(c) for c in out))
        f.write("\n]\n")


if __name__ == "__main__":
    main()
