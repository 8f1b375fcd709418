"""Reference cases for Mx.NN (test/reference/nn/cases.exs), computed by PyTorch 1.13 in float64.

Run with Debian's python: /usr/bin/python3 test/reference/generate_nn.py

Each case is run in f32 and f64: inputs and parameters are drawn in f64, rounded to the case's
type, and the expected value is computed in f64 from the rounded values, so a test sees only the
rounding of Mx's own arithmetic. Where torch 1.13 lacks a function (RMSNorm, relu_squared, step,
gelu_fast_approx, RoPE, ALiBi, the sinusoidal encoding, scaled_dot_product_attention, log-cosh and
hinge losses) the reference is written here from its defining formula, in torch f64 or numpy.
Layouts are Mx's (channels last); torch's channels-first layers see permuted inputs.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import NP, Arr, Atom, KW, ex  # noqa: E402

torch.manual_seed(0)
rng = np.random.default_rng(20261206)
CASES = []
T = None  # the current case type, "f32" or "f64"


def q(a):
    """a rounded to the current type, as f64."""
    return np.asarray(a, dtype=NP[T]).astype(np.float64)


def R(*shape, lo=-2.0, hi=2.0):
    return q(rng.uniform(lo, hi, size=shape))


def A(a):
    """An input array of the current type (a must already be rounded)."""
    return Arr(T, np.asarray(a, dtype=NP[T]))


def I(a):
    return Arr("s64", np.asarray(a, dtype=np.int64))


def E(a):
    """An expected value: f64 arrays (tuples and dicts of them)."""
    if isinstance(a, tuple):
        return tuple(E(x) for x in a)
    if isinstance(a, dict):
        return {k: E(v) for k, v in a.items()}
    if isinstance(a, torch.Tensor):
        a = a.detach().numpy()
    return Arr("f64", np.asarray(a, dtype=np.float64))


def t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def P(**kw):
    """A parameter map: torch tensors/numpy -> arrays of the case type."""
    return {k: (v if isinstance(v, (dict, list)) else A(q(v.detach().numpy() if isinstance(v, torch.Tensor) else v)))
            for k, v in kw.items()}


def add(name, module, fun, args, expected, opts=None):
    CASES.append({"name": f"{name} ({T})", "module": Atom("\"Elixir." + module + "\""), "fun": Atom(fun), "args": args,
                  "opts": opts or KW(), "expected": E(expected), "type": Atom(T)})


def rounded(module):
    """Rounds a torch module's parameters to the case type (kept in f64)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(t(q(p.numpy())))
    return module


# ---- activations -----------------------------------------------------------------------------

def activations():
    x = R(4, 5, lo=-4, hi=4)
    xt = t(x)
    acts = [
        ("relu", KW(), F.relu(xt)),
        ("relu6", KW(), F.relu6(xt * 2)),
        ("leaky_relu", KW(negative_slope=0.1), F.leaky_relu(xt, 0.1)),
        ("elu", KW(alpha=0.7), F.elu(xt, 0.7)),
        ("selu", KW(), F.selu(xt)),
        ("celu", KW(alpha=1.3), F.celu(xt, 1.3)),
        ("gelu", KW(), F.gelu(xt)),
        ("gelu_approx", KW(), F.gelu(xt, approximate="tanh")),
        ("gelu_fast_approx", KW(), xt * torch.sigmoid(1.702 * xt)),
        ("silu", KW(), F.silu(xt)),
        ("sigmoid", KW(), torch.sigmoid(xt)),
        ("log_sigmoid", KW(), F.logsigmoid(xt)),
        ("tanh", KW(), torch.tanh(xt)),
        ("hard_tanh", KW(min_val=-0.5, max_val=2.0), F.hardtanh(xt, -0.5, 2.0)),
        ("hard_swish", KW(), F.hardswish(xt)),
        ("hard_shrink", KW(lambd=0.6), F.hardshrink(xt, 0.6)),
        ("soft_shrink", KW(lambd=0.6), F.softshrink(xt, 0.6)),
        ("softplus", KW(), F.softplus(xt, beta=1, threshold=1000)),
        ("softsign", KW(), F.softsign(xt)),
        ("mish", KW(), F.mish(xt)),
        ("step", KW(threshold=0.5), (xt > 0.5).double()),
        ("log_softmax", KW(axis=0), F.log_softmax(xt, 0)),
        ("softmax", KW(), F.softmax(xt, -1)),
        ("softmin", KW(axis=-1), F.softmin(xt, -1)),
        ("relu_squared", KW(), F.relu(xt) ** 2),
    ]
    for name, opts, want in acts:
        arg = x * 2 if name == "relu6" else x
        add(f"activation {name}", "Mx.NN.Activations", name, [A(arg)], want, opts)
    alpha = R(5, lo=0, hi=0.5)
    add("activation prelu", "Mx.NN.Activations", "prelu", [A(x)], F.prelu(xt, t(alpha)), KW(alpha=A(alpha)))
    g = R(3, 6)
    add("activation glu", "Mx.NN.Activations", "glu", [A(g)], F.glu(t(g), -1))
    add("activation glu axis 0", "Mx.NN.Activations", "glu", [A(g.T)], F.glu(t(g.T), 0), KW(axis=0))


# ---- losses ----------------------------------------------------------------------------------

def losses():
    L = "Mx.NN.Losses"
    logits = R(6, 4, lo=-3, hi=3)
    idx = rng.integers(0, 4, size=6)
    w = R(6, lo=0.1, hi=2)
    for eps in [0.0, 0.1]:
        for red in ["none", "mean", "sum"]:
            want = F.cross_entropy(t(logits), torch.tensor(idx), reduction="none", label_smoothing=eps) * t(w)
            want = {"none": want, "mean": want.mean(), "sum": want.sum()}[red]
            add(f"cross_entropy indices eps={eps} {red}", L, "cross_entropy", [A(logits), I(idx)], want,
                KW(label_smoothing=eps, weights=A(w), reduction=Atom(red)))
    probs = q(F.softmax(t(R(6, 4)), -1).numpy())
    for eps in [0.0, 0.2]:
        add(f"cross_entropy probabilities eps={eps}", L, "cross_entropy", [A(logits), A(probs)],
            F.cross_entropy(t(logits), t(probs), reduction="none", label_smoothing=eps), KW(label_smoothing=eps))
    l3 = R(2, 4, 3)
    i3 = rng.integers(0, 4, size=(2, 3))
    add("cross_entropy axis 1", L, "cross_entropy", [A(l3), I(i3)],
        F.cross_entropy(t(l3), torch.tensor(i3), reduction="none"), KW(axis=1))

    x = R(3, 5, lo=-4, hi=4)
    tg = R(3, 5, lo=0, hi=1)
    bw = R(3, 5, lo=0.5, hi=1.5)
    for red in ["none", "mean", "sum"]:
        want = F.binary_cross_entropy_with_logits(t(x), t(tg), weight=t(bw), reduction=red)
        add(f"binary_cross_entropy logits {red}", L, "binary_cross_entropy", [A(x), A(tg)], want,
            KW(weights=A(bw), reduction=Atom(red)))
    p = R(3, 5, lo=0.01, hi=0.99)
    p[0, 0], p[0, 1], p[1, 0] = 0.0, 1.0, 0.0
    tb = R(3, 5, lo=0, hi=1)
    tb[0, 0], tb[0, 1], tb[1, 0] = 1.0, 0.0, 0.0
    add("binary_cross_entropy probabilities (log clamped at -100)", L, "binary_cross_entropy", [A(p), A(tb)],
        F.binary_cross_entropy(t(p), t(tb), reduction="none"), KW(with_logits=False, reduction=Atom("none")))

    a, b = R(4, 6), R(4, 6)
    add("l1_loss", L, "l1_loss", [A(a), A(b)], F.l1_loss(t(a), t(b)))
    add("mse_loss", L, "mse_loss", [A(a), A(b)], F.mse_loss(t(a), t(b), reduction="sum"), KW(reduction=Atom("sum")))
    add("mse_loss none", L, "mse_loss", [A(a), A(b)], F.mse_loss(t(a), t(b), reduction="none"), KW(reduction=Atom("none")))
    lp = q(F.log_softmax(t(logits), -1).numpy())
    add("nll_loss", L, "nll_loss", [A(lp), I(idx)], F.nll_loss(t(lp), torch.tensor(idx), reduction="none"))
    lq = q(F.log_softmax(t(R(6, 4)), -1).numpy())
    add("kl_div_loss", L, "kl_div_loss", [A(lp), A(lq)],
        F.kl_div(t(lp), t(lq), reduction="none", log_target=True).sum(-1))
    add("smooth_l1_loss", L, "smooth_l1_loss", [A(a), A(b)], F.smooth_l1_loss(t(a), t(b), beta=0.5, reduction="none"),
        KW(beta=0.5, reduction=Atom("none")))
    an, po, ne = R(5, 3), R(5, 3), R(5, 3)
    for pn in [2, 1]:
        add(f"triplet_loss p={pn}", L, "triplet_loss", [A(an), A(po), A(ne)],
            F.triplet_margin_loss(t(an), t(po), t(ne), margin=0.5, p=pn, eps=1e-6, reduction="none"),
            KW(p=pn, margin=0.5))
    y = np.where(rng.uniform(size=(4, 6)) < 0.5, -1.0, 1.0)
    add("hinge_loss", L, "hinge_loss", [A(a), A(y)], torch.clamp(1 - t(a) * t(y), min=0))
    add("huber_loss", L, "huber_loss", [A(a), A(b)], F.huber_loss(t(a), t(b), delta=0.7, reduction="none"), KW(delta=0.7))
    add("log_cosh_loss", L, "log_cosh_loss", [A(a), A(b)], torch.log(torch.cosh(t(a) - t(b))))
    add("cosine_similarity_loss", L, "cosine_similarity_loss", [A(a), A(b)], F.cosine_similarity(t(a), t(b), dim=1))
    add("cosine_similarity_loss axis 0 mean", L, "cosine_similarity_loss", [A(a), A(b)],
        F.cosine_similarity(t(a), t(b), dim=0).mean(), KW(axis=0, reduction=Atom("mean")))
    r1, r2 = R(7), R(7)
    ry = np.where(rng.uniform(size=7) < 0.5, -1.0, 1.0)
    add("margin_ranking_loss", L, "margin_ranking_loss", [A(r1), A(r2), A(ry)],
        F.margin_ranking_loss(t(r1), t(r2), t(ry), margin=0.3, reduction="none"), KW(margin=0.3))
    mu, tt, var = R(4, 3), R(4, 3), R(4, 3, lo=0.1, hi=2)
    for full in [False, True]:
        add(f"gaussian_nll_loss full={full}", L, "gaussian_nll_loss", [A(mu), A(tt), A(var)],
            F.gaussian_nll_loss(t(mu), t(tt), t(var), full=full, eps=1e-6, reduction="mean"), KW(full=full))


# ---- layers ----------------------------------------------------------------------------------

def layers():
    lin = rounded(torch.nn.Linear(5, 3).double())
    x = R(2, 4, 5)
    add("Linear", "Mx.NN.Linear", "apply", [P(weight=lin.weight, bias=lin.bias), A(x)], lin(t(x)))
    lin2 = rounded(torch.nn.Linear(5, 3, bias=False).double())
    add("Linear no bias", "Mx.NN.Linear", "apply", [P(weight=lin2.weight), A(x)], lin2(t(x)))

    bil = rounded(torch.nn.Bilinear(3, 4, 2).double())
    x1, x2 = R(5, 3), R(5, 4)
    add("Bilinear", "Mx.NN.Bilinear", "apply", [P(weight=bil.weight, bias=bil.bias), (A(x1), A(x2))], bil(t(x1), t(x2)))

    emb = rounded(torch.nn.Embedding(7, 3).double())
    ix = rng.integers(0, 7, size=(2, 4))
    add("Embedding", "Mx.NN.Embedding", "apply", [P(weight=emb.weight), I(ix)], emb(torch.tensor(ix)))

    ln = rounded(torch.nn.LayerNorm(6).double())
    with torch.no_grad():
        ln.weight.copy_(t(R(6))), ln.bias.copy_(t(R(6)))
    x = R(3, 4, 6, lo=-3, hi=3)
    add("LayerNorm", "Mx.NN.LayerNorm", "apply", [P(weight=ln.weight, bias=ln.bias), A(x)], ln(t(x)))
    add("LayerNorm affine: false", "Mx.NN.LayerNorm", "apply", [{}, A(x)], F.layer_norm(t(x), (6,)), KW(affine=False))

    rw = R(6)
    rms = t(x) / torch.sqrt((t(x) ** 2).mean(-1, keepdim=True) + 1e-5) * t(rw)
    add("RMSNorm", "Mx.NN.RMSNorm", "apply", [P(weight=rw), A(x)], rms)

    img = R(2, 3, 4, 6, lo=-3, hi=3)
    cf = t(img).permute(0, 3, 1, 2)
    gn = rounded(torch.nn.GroupNorm(2, 6).double())
    with torch.no_grad():
        gn.weight.copy_(t(R(6))), gn.bias.copy_(t(R(6)))
    add("GroupNorm", "Mx.NN.GroupNorm", "apply", [P(weight=gn.weight, bias=gn.bias), A(img)],
        gn(cf).permute(0, 2, 3, 1), KW(num_groups=2))
    inn = rounded(torch.nn.InstanceNorm2d(6, affine=True).double())
    with torch.no_grad():
        inn.weight.copy_(t(R(6))), inn.bias.copy_(t(R(6)))
    add("InstanceNorm", "Mx.NN.InstanceNorm", "apply", [P(weight=inn.weight, bias=inn.bias), A(img)],
        inn(cf).permute(0, 2, 3, 1))
    add("InstanceNorm no affine", "Mx.NN.InstanceNorm", "apply", [{}, A(img)],
        F.instance_norm(cf).permute(0, 2, 3, 1))

    bn = torch.nn.BatchNorm1d(6, momentum=0.2).double()
    with torch.no_grad():
        bn.weight.copy_(t(R(6))), bn.bias.copy_(t(R(6)))
        bn.running_mean.copy_(t(R(6))), bn.running_var.copy_(t(R(6, lo=0.5, hi=2)))
    bp = P(weight=bn.weight, bias=bn.bias, running_mean=bn.running_mean, running_var=bn.running_var)
    xb = R(5, 4, 6, lo=-3, hi=3)
    bn.eval()
    add("BatchNorm eval", "Mx.NN.BatchNorm", "apply", [bp, A(xb)], bn(t(xb).permute(0, 2, 1)).permute(0, 2, 1))
    bn.train()
    y = bn(t(xb).permute(0, 2, 1)).permute(0, 2, 1)
    add("BatchNorm train", "Mx.NN.BatchNorm", "apply", [bp, A(xb)],
        (y, {"weight": bn.weight, "bias": bn.bias, "running_mean": bn.running_mean, "running_var": bn.running_var}),
        KW(mode=Atom("train"), momentum=0.2))

    # RoPE (numpy): angles (offset + t)·scale·base^(-2i/dims) on the first dims features.
    xr = R(2, 5, 6)
    for trad in [False, True]:
        dims, base, scale, offset = 4, 500.0, 0.5, 3
        half = dims // 2
        pos = (offset + np.arange(5)) * scale
        theta = pos[:, None] * base ** (-2.0 * np.arange(half) / dims)
        c, s = np.cos(theta), np.sin(theta)
        rot = xr[..., :dims]
        x1, x2 = (rot[..., 0::2], rot[..., 1::2]) if trad else (rot[..., :half], rot[..., half:])
        y1, y2 = x1 * c - x2 * s, x1 * s + x2 * c
        out = np.stack([y1, y2], -1).reshape(rot.shape) if trad else np.concatenate([y1, y2], -1)
        out = np.concatenate([out, xr[..., dims:]], -1)
        add(f"RoPE traditional={trad}", "Mx.NN.RoPE", "apply", [{}, A(xr)], out,
            KW(dims=dims, traditional=trad, base=base, scale=scale, offset=offset))

    # Sinusoidal encoding (numpy, MLX's definition).
    xp = R(2, 3, lo=0, hi=20)
    for cos_first, full_turns in [(False, False), (True, True)]:
        dims = 8
        half = dims // 2
        one_zero = 1 - np.arange(half) / (half - 1)
        sig = np.exp(one_zero * (math.log(1.0) - math.log(1e-4)) + math.log(1e-4))
        if full_turns:
            sig = sig * 2 * math.pi
        yy = xp[..., None] * sig
        parts = [np.cos(yy), np.sin(yy)] if cos_first else [np.sin(yy), np.cos(yy)]
        add(f"SinusoidalPositionalEncoding cos_first={cos_first}", "Mx.NN.SinusoidalPositionalEncoding", "apply",
            [{}, A(xp)], np.concatenate(parts, -1) * math.sqrt(2 / dims),
            KW(dims=dims, cos_first=cos_first, full_turns=full_turns))

    # ALiBi (numpy): -|i + offset - j| · 2^(-8(h+1)/H).
    sc = R(2, 4, 3, 5)
    slopes = np.array([2.0 ** (-8.0 * (h + 1) / 4) for h in range(4)])
    dist = -np.abs((2 + np.arange(3))[:, None] - np.arange(5)[None, :])
    add("ALiBi", "Mx.NN.ALiBi", "apply", [{}, A(sc)], sc + dist[None, None] * slopes[None, :, None, None], KW(offset=2))

    recurrent()
    attention()

    seq = rounded(torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double())
    xs = R(3, 4)
    spec = [(Atom("\"Elixir.Mx.NN.Linear\""), KW(input_dims=4, output_dims=5)), Atom("tanh"),
            (Atom("\"Elixir.Mx.NN.Linear\""), KW(input_dims=5, output_dims=2))]
    add("Sequential", "Mx.NN.Sequential", "apply",
        [[P(weight=seq[0].weight, bias=seq[0].bias), {}, P(weight=seq[2].weight, bias=seq[2].bias)], A(xs)],
        seq(t(xs)), KW(layers=spec))


def recurrent():
    x = R(2, 5, 3)
    h0 = R(2, 4)
    rnn = rounded(torch.nn.RNN(3, 4, batch_first=True).double())
    p = P(Wxh=rnn.weight_ih_l0, Whh=rnn.weight_hh_l0, bias=q((rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy()))
    add("RNN", "Mx.NN.RNN", "apply", [p, A(x)], rnn(t(x))[0])
    add("RNN initial hidden", "Mx.NN.RNN", "apply", [p, A(x)], rnn(t(x), t(h0)[None])[0], KW(hidden=A(h0)))

    gru = rounded(torch.nn.GRU(3, 4, batch_first=True).double())
    bi, bh = gru.bias_ih_l0.detach().numpy(), gru.bias_hh_l0.detach().numpy()
    # Round the torch biases so that b = b_ih + [b_hr, b_hz, 0] is exact in the case type.
    b = q(bi + np.concatenate([bh[:8], np.zeros(4)]))
    with torch.no_grad():
        gru.bias_ih_l0.copy_(t(b - np.concatenate([bh[:8], np.zeros(4)])))
    p = P(Wx=gru.weight_ih_l0, Wh=gru.weight_hh_l0, b=b, bhn=bh[8:])
    with torch.no_grad():
        gru.bias_hh_l0.copy_(t(np.concatenate([bh[:8], q(bh[8:])])))
        gru.bias_ih_l0.copy_(t(b - np.concatenate([bh[:8], np.zeros(4)])))
    add("GRU", "Mx.NN.GRU", "apply", [p, A(x)], gru(t(x))[0])
    add("GRU initial hidden", "Mx.NN.GRU", "apply", [p, A(x)], gru(t(x), t(h0)[None])[0], KW(hidden=A(h0)))

    lstm = rounded(torch.nn.LSTM(3, 4, batch_first=True).double())
    bsum = q((lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy())
    with torch.no_grad():
        lstm.bias_ih_l0.copy_(t(bsum)), lstm.bias_hh_l0.zero_()
    p = P(Wx=lstm.weight_ih_l0, Wh=lstm.weight_hh_l0, bias=bsum)
    c0 = R(2, 4)
    for name, state, opts in [("LSTM", None, KW()), ("LSTM initial state", (h0, c0), KW(hidden=A(h0), cell=A(c0)))]:
        cell = torch.nn.LSTMCell(3, 4).double()
        with torch.no_grad():
            cell.weight_ih.copy_(lstm.weight_ih_l0), cell.weight_hh.copy_(lstm.weight_hh_l0)
            cell.bias_ih.copy_(lstm.bias_ih_l0), cell.bias_hh.zero_()
        hc = None if state is None else (t(state[0]), t(state[1]))
        hs, cs = [], []
        for k in range(5):
            hc = cell(t(x)[:, k], hc)
            hs.append(hc[0]), cs.append(hc[1])
        full = lstm(t(x), None if state is None else (t(state[0])[None], t(state[1])[None]))[0]
        assert torch.allclose(full, torch.stack(hs, 1), atol=1e-12)
        add(name, "Mx.NN.LSTM", "apply", [p, A(x)], (torch.stack(hs, 1), torch.stack(cs, 1)), opts)


def mha_params(m):
    d = m.embed_dim
    w, b = m.in_proj_weight, m.in_proj_bias
    lin = lambda W, B: P(weight=W, bias=B)
    return {"query_proj": lin(w[:d], b[:d]), "key_proj": lin(w[d:2 * d], b[d:2 * d]),
            "value_proj": lin(w[2 * d:], b[2 * d:]), "out_proj": lin(m.out_proj.weight, m.out_proj.bias)}


def causal(n, m=None):
    m = m or n
    return torch.triu(torch.full((n, m), -math.inf, dtype=torch.float64), 1 + m - n)


def attention():
    qq, kk, vv = R(2, 2, 3, 4), R(2, 2, 5, 4), R(2, 2, 5, 3)
    mask = rng.uniform(size=(3, 5)) < 0.7
    mask[:, 0] = True
    s = t(qq) @ t(kk).transpose(-1, -2) * 0.7
    s = s.masked_fill(~torch.tensor(mask), -math.inf)
    add("scaled_dot_product_attention bool mask", "Mx.NN", "scaled_dot_product_attention", [A(qq), A(kk), A(vv)],
        F.softmax(s, -1) @ t(vv), KW(scale=0.7, mask=Arr("bool", mask)))
    s = t(qq) @ t(kk).transpose(-1, -2) / 2 + causal(3, 5)
    add("scaled_dot_product_attention causal", "Mx.NN", "scaled_dot_product_attention", [A(qq), A(kk), A(vv)],
        F.softmax(s, -1) @ t(vv), KW(mask=Atom("causal")))

    m = rounded(torch.nn.MultiheadAttention(8, 2, bias=True, batch_first=True).double())
    xq, xkv = R(2, 3, 8), R(2, 4, 8)
    fm = R(3, 4)
    out = m(t(xq), t(xkv), t(xkv), attn_mask=t(fm), need_weights=False)[0]
    add("MultiHeadAttention cross, additive mask", "Mx.NN.MultiHeadAttention", "apply",
        [mha_params(m), (A(xq), A(xkv), A(xkv))], out, KW(num_heads=2, mask=A(fm)))
    out = m(t(xq), t(xq), t(xq), attn_mask=causal(3), need_weights=False)[0]
    add("MultiHeadAttention self, causal", "Mx.NN.MultiHeadAttention", "apply", [mha_params(m), A(xq)], out,
        KW(num_heads=2, mask=Atom("causal")))

    x, mem = R(2, 3, 8), R(2, 4, 8)
    for norm_first in [True, False]:
        for act in ["relu", "gelu"]:
            enc = rounded(torch.nn.TransformerEncoderLayer(8, 2, 16, 0.0, act, batch_first=True,
                                                           norm_first=norm_first).double())
            enc.train()
            p = {"attention": mha_params(enc.self_attn), "ln1": P(weight=enc.norm1.weight, bias=enc.norm1.bias),
                 "ln2": P(weight=enc.norm2.weight, bias=enc.norm2.bias),
                 "linear1": P(weight=enc.linear1.weight, bias=enc.linear1.bias),
                 "linear2": P(weight=enc.linear2.weight, bias=enc.linear2.bias)}
            add(f"TransformerEncoderLayer norm_first={norm_first} {act}", "Mx.NN.TransformerEncoderLayer", "apply",
                [p, A(x)], enc(t(x), src_mask=causal(3)),
                KW(num_heads=2, norm_first=norm_first, activation=Atom(act), mask=Atom("causal")))
        dec = rounded(torch.nn.TransformerDecoderLayer(8, 2, 16, 0.0, batch_first=True, norm_first=norm_first).double())
        dec.train()
        p = {"self_attention": mha_params(dec.self_attn), "cross_attention": mha_params(dec.multihead_attn),
             "ln1": P(weight=dec.norm1.weight, bias=dec.norm1.bias), "ln2": P(weight=dec.norm2.weight, bias=dec.norm2.bias),
             "ln3": P(weight=dec.norm3.weight, bias=dec.norm3.bias),
             "linear1": P(weight=dec.linear1.weight, bias=dec.linear1.bias),
             "linear2": P(weight=dec.linear2.weight, bias=dec.linear2.bias)}
        add(f"TransformerDecoderLayer norm_first={norm_first}", "Mx.NN.TransformerDecoderLayer", "apply",
            [p, (A(x), A(mem))], dec(t(x), t(mem), tgt_mask=causal(3)),
            KW(num_heads=2, norm_first=norm_first, mask=Atom("causal")))


def to_cf(x, d):
    """A channels-last array (numpy or torch) as a torch channels-first tensor."""
    return (x if isinstance(x, torch.Tensor) else t(x)).permute(0, d + 1, *range(1, d + 1))


def to_cl(y, d):
    return y.permute(0, *range(2, d + 2), 1)


def conv_layers():
    """Conv, transposed conv, pooling and upsampling: MLX layouts (channels last, weights
    {out, k..., in / groups}) converted to torch's channels-first ones. A generator of their own
    leaves the other cases' data unchanged."""
    global rng
    shared, rng = rng, np.random.default_rng(20261207 if T == "f32" else 20261208)
    convs = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
    convts = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
    # (d, x shape, weight shape {out, k..., in/groups}, options)
    for d, xs, ws, o in [
        (1, (2, 9, 4), (6, 3, 2), dict(stride=2, padding=1, dilation=2, groups=2)),
        (1, (2, 6, 3), (2, 2, 3), dict(bias=False)),
        (2, (2, 7, 6, 4), (3, 3, 2, 4), dict(stride=[2, 1], padding=[1, 0], dilation=[1, 2])),
        (2, (1, 5, 5, 4), (6, 2, 2, 2), dict(groups=2, padding=1)),
        (3, (1, 5, 4, 6, 2), (4, 2, 3, 2, 1), dict(groups=2, padding=1, stride=[1, 2, 2])),
    ]:
        x, w = R(*xs), R(*ws)
        b = R(ws[0]) if o.get("bias", True) else None
        tw = t(w).permute(0, d + 1, *range(1, d + 1))
        ref = convs[d](to_cf(x, d), tw, None if b is None else t(b), stride=o.get("stride", 1),
                       padding=o.get("padding", 0), dilation=o.get("dilation", 1), groups=o.get("groups", 1))
        params = P(weight=w) if b is None else P(weight=w, bias=b)
        add(f"Conv{d}d {o}", f"Mx.NN.Conv{d}d", "apply", [params, A(x)], to_cl(ref, d), KW(**o))

    for d, xs, ws, o in [
        (1, (2, 5, 4), (6, 3, 2), dict(stride=2, padding=1, dilation=2, groups=2, output_padding=1)),
        (1, (2, 4, 3), (2, 2, 3), dict(bias=False)),
        (2, (2, 4, 3, 3), (2, 3, 2, 3), dict(stride=[2, 3], padding=[1, 0], output_padding=[1, 2])),
        (2, (1, 3, 3, 2), (2, 2, 2, 2), dict(dilation=2, padding=1)),
        (3, (1, 3, 2, 3, 2), (3, 2, 2, 2, 2), dict(stride=2)),
    ]:
        x, w = R(*xs), R(*ws)
        b = R(ws[0]) if o.get("bias", True) else None
        g = o.get("groups", 1)
        out, cin = ws[0], xs[-1]
        # {g·out/g, k..., in/g} -> torch's {in, out/g, k...}
        tw = t(w).reshape(g, out // g, *ws[1:-1], cin // g).permute(0, d + 2, 1, *range(2, d + 2))
        tw = tw.reshape(cin, out // g, *ws[1:-1])
        ref = convts[d](to_cf(x, d), tw, None if b is None else t(b), stride=o.get("stride", 1),
                        padding=o.get("padding", 0), output_padding=o.get("output_padding", 0), groups=g,
                        dilation=o.get("dilation", 1))
        params = P(weight=w) if b is None else P(weight=w, bias=b)
        add(f"ConvTranspose{d}d {o}", f"Mx.NN.ConvTranspose{d}d", "apply", [params, A(x)], to_cl(ref, d),
            KW(**o))

    maxp = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
    avgp = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
    for d, xs, o in [
        (1, (2, 7, 3), dict(kernel_size=3, stride=2, padding=1)),
        (2, (2, 5, 6, 3), dict(kernel_size=[2, 3], stride=[2, 1], padding=[1, 1])),
        (3, (1, 4, 5, 4, 2), dict(kernel_size=2)),
    ]:
        x = R(*xs)
        args = dict(kernel_size=o["kernel_size"], stride=o.get("stride"), padding=o.get("padding", 0))
        add(f"MaxPool{d}d {o}", f"Mx.NN.MaxPool{d}d", "apply", [{}, A(x)], to_cl(maxp[d](to_cf(x, d), **args), d),
            KW(**o))
        add(f"AvgPool{d}d {o}", f"Mx.NN.AvgPool{d}d", "apply", [{}, A(x)], to_cl(avgp[d](to_cf(x, d), **args), d),
            KW(**o))

    # Nearest only at integer scales, where MLX's rule and torch's floor(i / scale) agree.
    for xs, scale, mode, align in [
        ((2, 3, 2), 3, "nearest", None),
        ((1, 3, 2, 2), [2, 3], "nearest", None),
        ((1, 2, 3, 2, 1), 2, "nearest", None),
        ((2, 4, 3), 2, "linear", False),
        ((2, 4, 3), 2, "linear", True),
        ((1, 4, 3, 2), [1.5, 2], "linear", False),
        ((1, 4, 3, 2), [1.5, 2], "linear", True),
        ((1, 2, 3, 2, 2), 2, "linear", False),
        ((1, 4, 3, 2), [1.5, 2], "cubic", False),
        ((1, 4, 3, 2), [1.5, 2], "cubic", True),
        ((2, 3, 5, 1), [3, 0.6], "cubic", False),
    ]:
        d = len(xs) - 2
        x = R(*xs)
        tmode = {"nearest": "nearest", "cubic": "bicubic"}.get(mode) or {1: "linear", 2: "bilinear", 3: "trilinear"}[d]
        ref = F.interpolate(to_cf(x, d), scale_factor=scale, mode=tmode, align_corners=align)
        o = KW(scale_factor=scale, interpolation=Atom(mode)) if align is None else \
            KW(scale_factor=scale, interpolation=Atom(mode), align_corners=align)
        add(f"Upsample {mode} {d}d scale={scale} align_corners={align}", "Mx.NN.Upsample", "apply", [{}, A(x)],
            to_cl(ref, d), o)
    rng = shared


def main():
    global T
    for T in ["f32", "f64"]:
        activations()
        losses()
        layers()
        conv_layers()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn", "cases.exs")
    with open(path, "w") as f:
        f.write("# Generated by test/reference/generate_nn.py (PyTorch 1.13, float64); do not edit.\n[\n")
        f.write(",\n".join("  " + ex(c) for c in CASES))
        f.write("\n]\n")
    print(f"{path}: {len(CASES)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
