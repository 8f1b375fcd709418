#!/usr/bin/python3
"""Writes test/reference/dist_discrete.exs: reference log-masses and log-densities
for Gen.Dist's discrete and multivariate distributions, from scipy.stats in f64.

Run with Debian's Python: /usr/bin/python3 test/reference/generate_dist_discrete.py

Each case is a map %{name:, dist:, params:, values:, expected:}: `dist` names the
Gen.Dist constructor, `params` its arguments (floats or nested lists of floats),
`values` the points scored (a list; for the multivariate ones a list of vectors
or matrices) and `expected` the f64 log-density at each, with -inf written as
:neg_infinity. Points outside the support (negative, non-integer, too large,
off the simplex) are included; scipy gives -inf there for the 1-d ones, and
for the multivariate ones the expectation is written as -inf here because scipy
raises instead.

Gen's conventions differ from scipy's in two places, mapped here:
geometric counts failures (scipy's geom counts trials: k -> k + 1) and
categorical indices are 0-based. `categorical` takes probabilities (Gen.jl's form:
log probs[x], not renormalized, so a vector summing to 1 - 1e-9, inside the
tolerance, scores its own entries) and `categorical_logits` unnormalized logits.
"""
import math
import os

import numpy as np
from scipy import stats
from scipy.special import logsumexp

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dist_discrete.exs")


def lit(x):
    if isinstance(x, (list, tuple, np.ndarray)):
        return "[" + ", ".join(lit(v) for v in x) + "]"
    x = float(x)
    if x == -math.inf:
        return ":neg_infinity"
    if x == math.inf:
        return ":infinity"
    if math.isnan(x):
        return ":nan"
    s = repr(x)
    if "e" in s and "." not in s.split("e")[0]:
        s = s.replace("e", ".0e")
    return s


CASES = []


def case(name, dist, params, values, expected):
    CASES.append((name, dist, params, values, [float(e) for e in expected]))


INTS = [-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 7.0, 25.0]

for p in [0.0, 0.3, 1.0]:
    vals = [0.0, 1.0, 2.0, -1.0, 0.5]
    exp = [stats.bernoulli.logpmf(v, p) if v in (0.0, 1.0) else -math.inf for v in vals]
    case(f"bernoulli p={p}", "bernoulli", [p], vals, exp)

for probs in [[0.2, 0.3, 0.5], [0.1, 0.0, 0.9], [1e-300, 0.5, 0.5, 1e-20]]:
    logits = np.log(np.array(probs) * 3.7)  # unnormalized on purpose
    k = len(probs)
    vals = [float(i) for i in range(k)] + [-1.0, float(k), 0.5]
    lp = logits - logsumexp(logits)
    exp = [lp[int(v)] if v == int(v) and 0 <= v < k else -math.inf for v in vals]
    with np.errstate(divide="ignore"):
        case(f"categorical logits={probs}", "categorical_logits", [list(logits)], vals, exp)

for probs in [[0.2, 0.3, 0.5], [0.1, 0.0, 0.9], [1e-300, 0.5, 0.5, 1e-20], [0.25, 0.75 - 1e-9]]:
    k = len(probs)
    vals = [float(i) for i in range(k)] + [-1.0, float(k), 0.5]
    with np.errstate(divide="ignore"):
        exp = [math.log(probs[int(v)]) if v == int(v) and 0 <= v < k and probs[int(v)] > 0 else -math.inf for v in vals]
    case(f"categorical probs={probs}", "categorical", [probs], vals, exp)

for rate in [0.0, 0.5, 3.0, 40.0]:
    case(f"poisson rate={rate}", "poisson", [rate], INTS + [60.0], stats.poisson.logpmf(INTS + [60.0], rate))

for p in [0.05, 0.5, 1.0]:
    vals = np.array(INTS)
    exp = np.where((vals >= 0) & (vals == np.floor(vals)), stats.geom.logpmf(vals + 1, p), -math.inf)
    case(f"geometric p={p}", "geometric", [p], INTS, exp)

for r, p in [(1.0, 0.5), (2.5, 0.3), (10.0, 0.9), (3.0, 1.0)]:
    case(f"neg_binomial r={r} p={p}", "neg_binomial", [r, p], INTS, stats.nbinom.logpmf(INTS, r, p))

for n, p in [(0.0, 0.3), (1.0, 0.5), (10.0, 0.25), (30.0, 0.0), (30.0, 1.0), (100.0, 0.7)]:
    vals = INTS + [10.0, 30.0, 70.0, 101.0]
    case(f"binomial n={n} p={p}", "binomial", [n, p], vals, stats.binom.logpmf(vals, n, p))

for lo, hi in [(0.0, 0.0), (1.0, 6.0), (-3.0, 3.0)]:
    vals = [-4.0, -3.0, -1.0, 0.0, 0.5, 1.0, 3.0, 6.0, 7.0]
    exp = [stats.randint.logpmf(v, lo, hi + 1) if v == int(v) else -math.inf for v in vals]
    case(f"discrete_uniform lo={lo} hi={hi}", "discrete_uniform", [lo, hi], vals, exp)

for alpha in [[1.0, 1.0, 1.0], [0.5, 2.0, 3.5], [20.0, 0.8]]:
    k = len(alpha)
    rng = np.random.default_rng(k)
    pts = [list(rng.dirichlet(alpha)) for _ in range(3)]
    exp = [stats.dirichlet.logpdf(x, alpha) for x in pts]
    bad = [[1.2] + [-0.2] + [0.0] * (k - 2), [0.7] * k]  # a negative component; a sum of 0.7 k
    case(f"dirichlet alpha={alpha}", "dirichlet", [alpha], pts + bad, exp + [-math.inf, -math.inf])

for mean, cov in [
    ([0.0, 0.0], [[1.0, 0.0], [0.0, 4.0]]),
    ([1.0, -2.0, 0.5], [[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 0.5]]),
]:
    rng = np.random.default_rng(len(mean))
    pts = [list(rng.normal(size=len(mean)) * 2) for _ in range(4)]
    case(f"multivariate_normal d={len(mean)}", "multivariate_normal", [mean, cov], pts,
         stats.multivariate_normal.logpdf(pts, mean, cov))

for df, scale in [(3.0, [[1.0, 0.0], [0.0, 1.0]]), (5.5, [[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 0.5]])]:
    d = len(scale)
    pts = [stats.wishart.rvs(df, scale, random_state=i).tolist() for i in range(3)]
    case(f"wishart df={df} d={d}", "wishart", [df, scale], pts, [stats.wishart.logpdf(x, df, scale) for x in pts])
    case(f"inv_wishart df={df} d={d}", "inv_wishart", [df, scale], pts, [stats.invwishart.logpdf(x, df, scale) for x in pts])

for theta, a, b in [(0.3, 2.0, 5.0), (0.9, 0.5, 0.5)]:
    vals = [0.0, 0.1, 0.5, 0.99, 1.0, -0.1, 1.1]
    with np.errstate(divide="ignore"):
        exp = [np.logaddexp(math.log(theta) + stats.beta.logpdf(v, a, b), math.log1p(-theta)) if 0 <= v <= 1 else -math.inf for v in vals]
    case(f"beta_uniform_mixture theta={theta}", "beta_uniform_mixture", [theta, a, b], vals, exp)

for bounds, probs in [([0.0, 1.0, 3.0, 3.5], [0.2, 0.5, 0.3]), ([-2.0, 0.0, 10.0], [1.0, 3.0])]:
    b, pr = np.array(bounds), np.array(probs) / sum(probs)
    vals = [bounds[0] - 0.5, bounds[0], 0.5, 2.0, 3.2, bounds[-1] - 1e-9, bounds[-1] + 0.5]
    exp = []
    for v in vals:
        i = np.searchsorted(b, v, side="right") - 1
        exp.append(math.log(pr[i] / (b[i + 1] - b[i])) if 0 <= i < len(pr) else -math.inf)
    case(f"piecewise_uniform bounds={bounds}", "piecewise_uniform", [bounds, probs], vals, exp)

# A mixture of two Poissons and of two normals (scipy pieces, weights unnormalized).
lw = [math.log(0.3), math.log(1.1)]
w = np.exp(np.array(lw) - logsumexp(lw))
vals = [0.0, 1.0, 4.0, 12.0, -1.0, 2.5]
with np.errstate(divide="ignore"):
    exp = [logsumexp(np.log(w) + np.array([stats.poisson.logpmf(v, 1.5), stats.poisson.logpmf(v, 9.0)])) for v in vals]
case("mixture of poissons", "mixture_poisson", [[1.5, 9.0], lw], vals, exp)
vals = [-3.0, 0.0, 0.7, 5.0]
exp = [logsumexp(np.log(w) + np.array([stats.norm.logpdf(v, -1.0, 0.5), stats.norm.logpdf(v, 2.0, 1.5)])) for v in vals]
case("mixture of normals", "mixture_normal", [[[-1.0, 0.5], [2.0, 1.5]], lw], vals, exp)

with open(OUT, "w") as f:
    f.write("# Written by test/reference/generate_dist_discrete.py (scipy %s); do not edit.\n[\n" % __import__("scipy").__version__)
    for name, dist, params, values, expected in CASES:
        f.write("  %%{name: %s, dist: :%s,\n    params: %s,\n    values: %s,\n    expected: %s},\n"
                % ('"' + name + '"', dist, lit(params), lit(values), lit(expected)))
    f.write("]\n")
print(f"wrote {len(CASES)} cases to {OUT}")
