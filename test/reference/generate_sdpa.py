"""Reference cases for Mx.NN.scaled_dot_product_attention (test/reference/sdpa.exs).

Run with Debian's python: /usr/bin/python3 test/reference/generate_sdpa.py

Debian's torch is 1.13, which has no torch.nn.functional.scaled_dot_product_attention (added in
2.0), so the reference is its documented formula written out in torch float64 (autograd gives the
gradients): softmax(scale q k^T + mask) v, a boolean mask as 0 / -inf, the causal mask MLX's
(query i sees keys j <= i + Lk - Lq), grouped-query heads by repeat_interleave (query head h
reads kv head h // (Hq / Hkv)). A row that sees no key is NaN, as that formula gives.

aux.bound holds each output's error bound from the rounding analysis, with u the compute unit
roundoff (2^-24 for f32, f16 and bf16, which compute in f32; 2^-53 for f64) and g(n) = n u / (1 - n u):
a score's error is at most g(D + 2) A (A = max over the row's keys of |scale| sum |q||k| + |mask|),
a probability's relative error at most 4 g(D + 2) A + g(2 Lk + 8) (the max, the exp and the sum), so
|out - ref| <= (4 g(D + 2) A + g(2 Lk + 8)) sum_j p_ij |v_jd|, plus half an ulp of the output type for
f16/bf16. The gradients (aux.grads, for the cotangent aux.cotangent) have bounds of the same form
over the absolute values of each sum (aux.grad_bounds).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import KW, Arr, Atom, CaseFile  # noqa: E402

SRC = "generate_sdpa.py (torch 1.13 float64: the documented formula and autograd)"
U = {"f16": 2.0 ** -24, "bf16": 2.0 ** -24, "f32": 2.0 ** -24, "f64": 2.0 ** -53}
OUT_ULP = {"f16": 2.0 ** -11, "bf16": 2.0 ** -8, "f32": 0.0, "f64": 0.0}


def gamma(n, u):
    return n * u / (1 - n * u)


def store(t, x):
    """x (float64) rounded to Mx type t: (Arr, the rounded values as float64)."""
    if t == "bf16":
        f = x.astype(np.float32)
        bits = f.view(np.uint32)
        r = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # round half to even
        a = Arr("bf16", r)
        return a, a.f64()
    dt = {"f16": np.float16, "f32": np.float32, "f64": np.float64}[t]
    v = x.astype(dt)
    return Arr(t, v), v.astype(np.float64)


def expand_heads(x, hq):
    """[..., Hkv, L, d] -> [..., Hq, L, d], kv head h // (Hq / Hkv) for query head h."""
    return torch.repeat_interleave(x, hq // x.shape[-3], dim=-3) if x.dim() >= 3 else x


def additive(mask, lq, lk, causal):
    if causal:
        i = torch.arange(lq).reshape(lq, 1)
        j = torch.arange(lk).reshape(1, lk)
        return torch.where(j <= i + (lk - lq), torch.tensor(0.0, dtype=torch.float64),
                           torch.tensor(-np.inf, dtype=torch.float64))
    if mask is None:
        return torch.tensor(0.0, dtype=torch.float64)
    m = torch.tensor(mask)
    if m.dtype == torch.bool:
        return torch.where(m, torch.tensor(0.0, dtype=torch.float64), torch.tensor(-np.inf, dtype=torch.float64))
    return m.to(torch.float64)


def attention(q, k, v, add, scale):
    hq = q.shape[-3] if q.dim() >= 3 else 1
    ke, ve = expand_heads(k, hq), expand_heads(v, hq)
    s = scale * (q @ ke.transpose(-1, -2)) + add
    p = torch.softmax(s, dim=-1)
    return p @ ve, p, ke, ve


def bounds(t, q, k, v, add, scale, p, ke, ve, g, out):
    """Forward and gradient error bounds (see the module docstring), all float64 numpy."""
    u = U[t]
    d, lk, lq, dv = q.shape[-1], k.shape[-2], q.shape[-2], v.shape[-1]
    aq, ak, av, ag, ao = (x.abs() for x in (q, ke, ve, g, out))
    ab = (abs(scale) * (aq @ ak.transpose(-1, -2)) + add.abs().nan_to_num(posinf=0.0)).where(p > 0, torch.zeros(()))
    A = ab.amax(dim=-1, keepdim=True)
    rel = 4 * gamma(d + 2, u) * A + gamma(2 * lk + 8, u)
    fwd = (rel * (p @ av)).numpy() + OUT_ULP[t] * np.abs(out.numpy())
    # gradients: dS = p (g v^T - rowsum(g o)); dq = scale dS k, dk = scale dS^T q, dv = p^T g
    ads = p * (ag @ av.transpose(-1, -2) + (ag * ao).sum(-1, keepdim=True))
    relg = rel + gamma(2 * lk + 2 * dv + 2 * lq + 8, u)
    bq = relg * abs(scale) * (ads @ ak)
    bk = abs(scale) * (relg * ads).transpose(-1, -2) @ aq
    bv = (relg * p).transpose(-1, -2) @ ag
    hq, hkv = (q.shape[-3], k.shape[-3]) if q.dim() >= 3 else (1, 1)

    def fold(x):  # sums the query heads that share a kv head (the expanded heads' gradients)
        if q.dim() < 3 or hq == hkv:
            return x
        s = x.shape
        return x.reshape(*s[:-3], hkv, hq // hkv, *s[-2:]).sum(-3)

    ulp = OUT_ULP[t]
    return fwd, [bq.numpy(), fold(bk).numpy(), fold(bv).numpy()], ulp


def main():
    rng = np.random.default_rng(20261206)
    f = CaseFile("sdpa", SRC)
    cases = [
        # name, q shape, k shape, v shape, mask kind, scale (None: 1/sqrt(D)), types
        ("4-d, Lq = Lk", (2, 2, 5, 4), (2, 2, 5, 4), (2, 2, 5, 4), None, None, ["f32", "f64", "f16", "bf16"]),
        ("Lq < Lk, causal", (1, 2, 3, 4), (1, 2, 7, 4), (1, 2, 7, 4), "causal", None, ["f32", "f64"]),
        ("Lq > Lk, causal (early rows see nothing: NaN)", (1, 1, 6, 3), (1, 1, 4, 3), (1, 1, 4, 3), "causal", None,
         ["f32", "f64"]),
        ("GQA 4 query heads on 2 kv heads, Dv != D", (2, 4, 3, 8), (2, 2, 6, 8), (2, 2, 6, 5), None, 0.3,
         ["f32", "f64", "f16"]),
        ("MQA causal", (1, 4, 5, 4), (1, 1, 5, 4), (1, 1, 5, 2), "causal", None, ["f32", "f64"]),
        ("additive mask [Lq, Lk]", (2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3), "float", None, ["f32", "f64"]),
        ("boolean mask [B, 1, Lq, Lk] with a fully masked row", (2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3), "bool",
         0.7, ["f32", "f64"]),
        ("D = 1", (1, 2, 4, 1), (1, 2, 6, 1), (1, 2, 6, 3), None, None, ["f32", "f64"]),
        ("rank 3 (heads only)", (3, 4, 6), (3, 5, 6), (3, 5, 2), "causal", None, ["f32", "f64"]),
        ("rank 2", (4, 3), (6, 3), (6, 5), None, 1.5, ["f64"]),
        ("long: several tiles of queries and keys, GQA, causal", (1, 2, 66, 4), (1, 1, 200, 4), (1, 1, 200, 3),
         "causal", None, ["f32", "f64"]),
        ("long: several tiles, additive mask [Hq, 1, Lk]", (1, 2, 66, 4), (1, 2, 140, 4), (1, 2, 140, 2), "float_h",
         None, ["f32"]),
    ]
    for name, qs, ks, vs, mk, scale, types in cases:
        q0, k0, v0 = (rng.uniform(-1.5, 1.5, s) for s in (qs, ks, vs))
        lq, lk = qs[-2], ks[-2]
        if mk == "float":
            mask = rng.uniform(-2, 1, (lq, lk))
            mask[0, 1] = -np.inf
        elif mk == "float_h":
            mask = rng.uniform(-3, 1, (qs[1], 1, lk))
        elif mk == "bool":
            mask = rng.uniform(0, 1, (qs[0], 1, lq, lk)) < 0.6
            mask[0, 0, 1, :] = False
            mask[:, :, :, 0] = True
            mask[0, 0, 1, :] = False
        else:
            mask = None
        for t in types:
            qa, q = store(t, q0)
            ka, k = store(t, k0)
            va, v = store(t, v0)
            opts = {}
            if scale is not None:
                opts["scale"] = scale
            if mk == "causal":
                opts["mask"] = Atom("causal")
            elif mask is not None:
                if mask.dtype == np.bool_:
                    opts["mask"] = Arr("bool", mask)
                else:
                    ma, mask_t = store("f32" if t in ("f16", "bf16") else t, mask)
                    opts["mask"] = ma
                    mask = mask_t
            sc = scale if scale is not None else 1.0 / np.sqrt(qs[-1])
            tq, tk, tv = (torch.tensor(x, requires_grad=True) for x in (q, k, v))
            add = additive(mask, lq, lk, mk == "causal")
            out, p, ke, ve = attention(tq, tk, tv, add, sc)
            ga, g_used = store(t, rng.uniform(-1, 1, out.shape))
            g = torch.tensor(g_used)
            out.backward(g)
            with torch.no_grad():
                fb, gb, _ = bounds(t, tq.detach(), tk.detach(), tv.detach(), add, sc, p.detach(), ke.detach(),
                                   ve.detach(), g, out.detach())
            aux = {"bound": Arr("f64", fb)}
            if t in ("f32", "f64"):
                # the gradients for exactly this (stored) cotangent
                aux["cotangent"] = ga
                aux["grads"] = [Arr("f64", x.grad.numpy()) for x in (tq, tk, tv)]
                aux["grad_bounds"] = [Arr("f64", b) for b in gb]
            kw = KW(**opts)
            f.add(f"{name} ({t})", "scaled_dot_product_attention", [qa, ka, va], Arr("f64", out.detach().numpy()),
                  kw, aux)
            f.cases[-1]["module"] = Atom('"Elixir.Mx.NN"')
    f.write()


if __name__ == "__main__":
    main()
