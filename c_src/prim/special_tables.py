#!/usr/bin/python3
"""Prints the constant tables of c_src/prim/special.c (paste them over the old ones).

Run with Debian's Python: /usr/bin/python3 c_src/prim/special_tables.py
Exact rational arithmetic (fractions) for the Temme coefficients; mpmath for zeta.

* temme_d[k][n]: Taylor coefficients in eta of Temme's c_k(eta) (DLMF 8.12.10-11):
    c_0 = 1/mu - 1/eta,  c_k = (1/eta) c_{k-1}'(eta) + (-1)^k g_k / mu,
  where mu = lambda - 1 solves mu - log(1 + mu) = eta^2 / 2 (mu, eta of one sign)
  and Gamma*(a) = Gamma(a) / (sqrt(2 pi) a^(a - 1/2) e^-a) ~ sum g_k a^-k (DLMF 5.11.3).
  The poles at eta = 0 cancel, so each c_k is a power series (radius 2 sqrt(pi)).
* lgamma1p_c[k]: (-1)^k zeta(k) / k for k >= 2: lgamma(1 + a) = -euler a + sum_k c_k a^k.
"""
from fractions import Fraction as F

import mpmath as mp

ORDER = 64  # eta orders carried; each c_k loses two
ROWS, TERMS = 10, 24


def mul(a, b, n):
    r = [F(0)] * n
    for i, x in enumerate(a[:n]):
        if x:
            for j, y in enumerate(b[: n - i]):
                r[i + j] += x * y
    return r


def inv(a, n):
    r = [F(0)] * n
    r[0] = 1 / a[0]
    for k in range(1, n):
        r[k] = -sum(a[j] * r[k - j] for j in range(1, min(k, len(a) - 1) + 1)) / a[0]
    return r


def mu_minus_log1p(mu, n):  # sum_{k>=2} (-1)^k mu^k / k, mu a series in eta
    res, p, k = [F(0)] * n, mul(mu, mu, n), 2
    while any(p):
        res = [r + F((-1) ** k, k) * x for r, x in zip(res, p)]
        p, k = mul(p, mu, n), k + 1
    return res


def temme_rows():
    mu = [F(0)] * ORDER
    mu[1] = F(1)
    for order in range(2, ORDER):  # series reversion, one coefficient at a time
        mu[order] = -mu_minus_log1p(mu, order + 2)[order + 1]
    inv_mu = inv(mu[1:] + [F(0)], ORDER - 1)  # 1/mu = sum inv_mu[k] eta^(k-1)

    def laurent_inv_mu(top):
        return {k - 1: inv_mu[k] for k in range(min(len(inv_mu), top + 2))}

    # g_k from log Gamma* = sum B_2m / (2m (2m-1)) a^(1-2m)
    K = ROWS + 2
    bern = [F(0)] * (2 * K + 2)
    A = [F(0)] * (2 * K + 2)
    for m in range(2 * K + 2):
        A[m] = F(1, m + 1)
        for j in range(m, 0, -1):
            A[j - 1] = j * (A[j - 1] - A[j])
        bern[m] = A[0]
    log_g = [F(0)] * (K + 1)
    for m in range(1, K):
        if 2 * m - 1 <= K:
            log_g[2 * m - 1] = bern[2 * m] / (2 * m * (2 * m - 1))
    g, term = [F(1)] + [F(0)] * K, [F(1)] + [F(0)] * K
    for j in range(1, K + 1):
        term = [t / j for t in mul(term, log_g, K + 1)]
        g = [x + y for x, y in zip(g, term)]

    top = ORDER - 4
    c = laurent_inv_mu(top)
    c[-1] -= 1
    rows = [{p: v for p, v in c.items() if 0 <= p <= top}]
    for k in range(1, ROWS):
        top -= 2
        new = {}
        for p, v in rows[-1].items():
            if p >= 1 and p - 2 <= top:
                new[p - 2] = new.get(p - 2, 0) + p * v
        for p, v in laurent_inv_mu(top).items():
            new[p] = new.get(p, 0) + (-1) ** k * g[k] * v
        assert all(v == 0 for p, v in new.items() if p < 0), "pole left in c_%d" % k
        rows.append({p: v for p, v in new.items() if 0 <= p <= top})
    return [[float(r.get(p, 0)) for p in range(TERMS)] for r in rows]


def c_array(values, per_line=4):
    lines = []
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(repr(v) for v in values[i : i + per_line]) + ",")
    return "\n".join(lines)


if __name__ == "__main__":
    print("static const double temme_d[%d][%d] = {" % (ROWS, TERMS))
    for row in temme_rows():
        print("  {\n" + c_array(row) + "\n  },")
    print("};")
    mp.mp.dps = 40
    zs = [float((-1) ** k * mp.zeta(k) / k) for k in range(2, 58)]
    print("static const double lgamma1p_c[] = { /* k = 2, 3, ... */")
    print(c_array(zs))
    print("};")
