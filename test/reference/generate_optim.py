"""Reference trajectories for Mx.Optim (test/mx/optim_test.exs).

Every optimizer runs five steps on fixed parameters {w: 3x4, k: 2x2x3, b: 4} with fixed
gradients (one set per step), in float32 and float64; the file records the parameters after
each step. PyTorch 1.13 (Debian's python3-torch) computes SGD, RMSprop, Adagrad, Adadelta,
Adam, AdamW and Adamax (torch.optim), the schedules (torch.optim.lr_scheduler) and
clip_grad_norm (torch.nn.utils.clip_grad_norm_). torch 1.13 has no Lion, Adafactor or Muon:
their updates are written below in NumPy from the papers and MLX's documented formulas
(mlx.optimizers: Lion, Adafactor, Muon), tensors in the parameter's type and step-dependent
scalars in float64 then cast, as Mx.Optim forms them.

Writes test/reference/optim/optim.exs. Run with /usr/bin/python3 test/reference/generate_optim.py.
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import OUT, Arr, Atom, KW, ex  # noqa: E402

torch.set_num_threads(1)
STEPS = 5
SHAPES = {"b": (4,), "k": (2, 2, 3), "w": (3, 4)}
rng = np.random.default_rng(2026)
P0 = {n: rng.uniform(-1.0, 1.0, s) for n, s in SHAPES.items()}
GRADS = [{n: rng.standard_normal(s) for n, s in SHAPES.items()} for _ in range(STEPS)]
NP = {"f32": np.float32, "f64": np.float64}
TORCH = {"f32": torch.float32, "f64": torch.float64}


def arrs(tree, t):
    return {n: Arr(t, np.asarray(v, dtype=NP[t])) for n, v in tree.items()}


def run_torch(cls, kw, t, sched=None):
    ps = {n: torch.tensor(P0[n], dtype=TORCH[t], requires_grad=True) for n in SHAPES}
    opt = cls([ps[n] for n in sorted(ps)], **kw)
    s = sched(opt) if sched else None
    out = []
    for g in GRADS:
        for n in ps:
            ps[n].grad = torch.tensor(g[n], dtype=TORCH[t])
        opt.step()
        if s:
            s.step()
        out.append({n: ps[n].detach().numpy().copy() for n in sorted(ps)})
    return out


def run_numpy(step_fn, init_fn, t):
    dt = NP[t]
    ps = {n: P0[n].astype(dt) for n in SHAPES}
    st = {n: init_fn(ps[n]) for n in SHAPES}
    out = []
    for i, g in enumerate(GRADS, start=1):
        for n in SHAPES:
            ps[n], st[n] = step_fn(ps[n], g[n].astype(dt), st[n], i)
        out.append({n: ps[n].copy() for n in sorted(ps)})
    return out


def c(x, p):
    """A float64 scalar in p's type."""
    return np.asarray(x, dtype=np.float64).astype(p.dtype)


# ---- Lion (Chen et al. 2023; mlx.optimizers.Lion) -----------------------------------------
def lion(lr, b1=0.9, b2=0.99, wd=0.0):
    def step(p, g, m, t):
        d = np.sign(b1 * m + (1 - b1) * g)
        m = b2 * m + (1 - b2) * g
        if wd > 0:
            p = p * c(1 - lr * wd, p)
        return p - c(lr, p) * d, m

    return step, np.zeros_like


# ---- Adafactor (Shazeer & Stern 2018; mlx.optimizers.Adafactor) -------------------------------
def adafactor(lr=None, eps=(1e-30, 1e-3), clip=1.0, decay=-0.8, beta1=None, wd=0.0,
              scale=True, relative=True, warmup=False):
    def init(p):
        s = {}
        if p.ndim >= 2:
            s["row"] = np.zeros(p.shape[:-1], p.dtype)
            s["col"] = np.zeros(p.shape[:-2] + p.shape[-1:], p.dtype)
        else:
            s["v"] = np.zeros_like(p)
        if beta1 is not None:
            s["m"] = np.zeros_like(p)
        return s

    def rms(x):
        return np.sqrt(np.mean(np.square(x)))

    def step(p, g, s, t):
        s = dict(s)
        rel = c(min(1e-6 * t if warmup else 1e-2, 1 / math.sqrt(t)), p) if relative else c(lr, p)
        rho = np.maximum(c(eps[1], p), rms(p)) * rel if scale else rel
        beta2 = c(1 - t ** decay, p)
        sq = np.square(g) + c(eps[0], p)
        if p.ndim >= 2:
            s["row"] = beta2 * s["row"] + (1 - beta2) * np.mean(sq, axis=-1)
            s["col"] = beta2 * s["col"] + (1 - beta2) * np.mean(sq, axis=-2)
            r = 1 / np.sqrt(s["row"] / np.mean(s["row"], axis=-1, keepdims=True))
            u = r[..., :, None] * (1 / np.sqrt(s["col"]))[..., None, :] * g
        else:
            s["v"] = beta2 * s["v"] + (1 - beta2) * sq
            u = (1 / np.sqrt(s["v"])) * g
        u = u / np.maximum(rms(u) / c(clip, p), c(1.0, p))
        u = rho * u
        if beta1 is not None:
            s["m"] = c(beta1, p) * s["m"] + c(1 - beta1, p) * u
            u = s["m"]
        if wd != 0:
            p = p + p * (rho * c(-wd, p))
        return p - u, s

    return step, init


# ---- Muon (Jordan et al. 2024; mlx.optimizers.Muon, iterating in the parameter's type) --------
def newton_schulz(x, steps):
    a, b, cc = 3.4445, -4.7750, 2.0315
    tr = x.shape[0] > x.shape[1]
    if tr:
        x = x.T
    x = x / (np.sqrt(np.sum(np.square(x))) + c(1e-7, x))
    for _ in range(steps):
        A = x @ x.T
        B = c(b, x) * A + c(cc, x) * (A @ A)
        x = c(a, x) * x + B @ x
    return x.T if tr else x


def muon(lr, mu=0.95, wd=0.01, nesterov=True, ns_steps=5):
    def step(p, g, v, t):
        if wd != 0:
            g = g + c(wd, p) * p
        v = c(mu, p) * v + c(1 - mu, p) * g
        u = g * c(1 - mu, p) + v * c(mu, p) if nesterov else v
        if p.ndim >= 2:
            o = newton_schulz(u.reshape(p.shape[0], -1), ns_steps).reshape(p.shape)
            k = math.sqrt(max(1, p.shape[-2] / p.shape[-1]))
            return p - c(lr * k, p) * o, v
        return p - c(lr, p) * u, v

    return step, np.zeros_like


O = torch.optim
S = O.lr_scheduler

# (name, Mx.Optim function, options, runner(t))
CASES = [
    ("sgd", "sgd", KW(learning_rate=0.1), lambda t: run_torch(O.SGD, dict(lr=0.1), t)),
    ("sgd momentum", "sgd", KW(learning_rate=0.1, momentum=0.9),
     lambda t: run_torch(O.SGD, dict(lr=0.1, momentum=0.9), t)),
    ("sgd dampening, weight decay", "sgd", KW(learning_rate=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1),
     lambda t: run_torch(O.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1), t)),
    ("sgd nesterov", "sgd", KW(learning_rate=0.1, momentum=0.9, nesterov=True),
     lambda t: run_torch(O.SGD, dict(lr=0.1, momentum=0.9, nesterov=True), t)),
    ("rmsprop", "rmsprop", KW(), lambda t: run_torch(O.RMSprop, dict(), t)),
    ("rmsprop centered, momentum, weight decay", "rmsprop",
     KW(learning_rate=0.02, alpha=0.9, eps=1e-6, momentum=0.5, centered=True, weight_decay=0.1),
     lambda t: run_torch(O.RMSprop, dict(lr=0.02, alpha=0.9, eps=1e-6, momentum=0.5, centered=True,
                                         weight_decay=0.1), t)),
    ("adagrad", "adagrad", KW(learning_rate=0.1), lambda t: run_torch(O.Adagrad, dict(lr=0.1), t)),
    ("adagrad initial accumulator, weight decay", "adagrad",
     KW(learning_rate=0.1, initial_accumulator_value=0.5, eps=1e-8, weight_decay=0.2),
     lambda t: run_torch(O.Adagrad, dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-8, weight_decay=0.2), t)),
    ("adadelta", "adadelta", KW(), lambda t: run_torch(O.Adadelta, dict(), t)),
    ("adadelta rho, weight decay", "adadelta", KW(learning_rate=0.5, rho=0.8, eps=1e-5, weight_decay=0.1),
     lambda t: run_torch(O.Adadelta, dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1), t)),
    ("adam", "adam", KW(learning_rate=0.01), lambda t: run_torch(O.Adam, dict(lr=0.01), t)),
    ("adam amsgrad, weight decay", "adam",
     KW(learning_rate=0.02, beta1=0.8, beta2=0.9, eps=1e-6, weight_decay=0.1, amsgrad=True),
     lambda t: run_torch(O.Adam, dict(lr=0.02, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1, amsgrad=True), t)),
    ("adamw", "adamw", KW(learning_rate=0.01), lambda t: run_torch(O.AdamW, dict(lr=0.01), t)),
    ("adamw amsgrad", "adamw", KW(learning_rate=0.02, weight_decay=0.3, amsgrad=True),
     lambda t: run_torch(O.AdamW, dict(lr=0.02, weight_decay=0.3, amsgrad=True), t)),
    ("adamax", "adamax", KW(), lambda t: run_torch(O.Adamax, dict(), t)),
    ("adamax weight decay", "adamax", KW(learning_rate=0.05, beta1=0.8, beta2=0.95, weight_decay=0.1),
     lambda t: run_torch(O.Adamax, dict(lr=0.05, betas=(0.8, 0.95), weight_decay=0.1), t)),
    ("lion", "lion", KW(learning_rate=0.01), lambda t: run_numpy(*lion(0.01), t)),
    ("lion weight decay", "lion", KW(learning_rate=0.02, beta1=0.8, beta2=0.9, weight_decay=0.5),
     lambda t: run_numpy(*lion(0.02, 0.8, 0.9, 0.5), t)),
    ("adafactor", "adafactor", KW(), lambda t: run_numpy(*adafactor(), t)),
    ("adafactor first moment, fixed rate, weight decay", "adafactor",
     KW(learning_rate=0.01, relative_step=False, beta1=0.9, weight_decay=0.1, clip_threshold=0.5),
     lambda t: run_numpy(*adafactor(lr=0.01, relative=False, beta1=0.9, wd=0.1, clip=0.5), t)),
    ("adafactor warmup, unscaled", "adafactor", KW(warmup_init=True, scale_parameter=False),
     lambda t: run_numpy(*adafactor(warmup=True, scale=False), t)),
    ("muon", "muon", KW(learning_rate=0.02), lambda t: run_numpy(*muon(0.02), t)),
    ("muon plain momentum", "muon", KW(learning_rate=0.05, momentum=0.9, weight_decay=0.0, nesterov=False, ns_steps=3),
     lambda t: run_numpy(*muon(0.05, 0.9, 0.0, False, 3), t)),
]

# Optimizers on a schedule: {name, function, options without the rate, schedule spec, torch run}.
SCHEDULED = [
    ("adam on exponential decay", "adam", KW(), ("exponential_decay", [0.05, 0.7]),
     lambda t: run_torch(O.Adam, dict(lr=0.05), t, lambda o: S.ExponentialLR(o, 0.7))),
    ("sgd momentum on step decay", "sgd", KW(momentum=0.9), ("step_decay", [0.1, 0.5, 2]),
     lambda t: run_torch(O.SGD, dict(lr=0.1, momentum=0.9), t, lambda o: S.StepLR(o, 2, 0.5))),
]


def schedule_values(make, n=25):
    p = torch.zeros(1, requires_grad=True)
    o = O.SGD([p], lr=0.1)
    s = make(o)
    vals = []
    for _ in range(n):
        vals.append(o.param_groups[0]["lr"])
        o.step()
        s.step()
    return vals


SCHEDULES = [
    ("step_decay", [0.1, 0.5, 3], lambda o: S.StepLR(o, 3, 0.5)),
    ("exponential_decay", [0.1, 0.9], lambda o: S.ExponentialLR(o, 0.9)),
    ("cosine_decay", [0.1, 10, 0.001], lambda o: S.CosineAnnealingLR(o, 10, 0.001)),
    ("linear_schedule", [0.01, 0.1, 5], lambda o: S.LinearLR(o, 0.1, 1.0, 5)),
]


def clip_case(max_norm, t):
    gs = [torch.tensor(GRADS[0][n], dtype=TORCH[t]) for n in sorted(SHAPES)]
    ps = [torch.zeros_like(g, requires_grad=True) for g in gs]
    for p, g in zip(ps, gs):
        p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(ps, max_norm)
    return {"max_norm": max_norm, "type": Atom(t), "grads": arrs(GRADS[0], t),
            "norm": float(norm), "clipped": arrs({n: p.grad.numpy() for n, p in zip(sorted(SHAPES), ps)}, t)}


def main():
    runs = []
    for t in ("f32", "f64"):
        for name, fun, kw, run in CASES:
            runs.append({"name": f"{name} {t}", "fun": Atom(fun), "opts": kw, "schedule": None, "type": Atom(t),
                         "params": arrs(P0, t), "grads": [arrs(g, t) for g in GRADS],
                         "expected": [arrs(p, t) for p in run(t)]})
        for name, fun, kw, (sname, sargs), run in SCHEDULED:
            runs.append({"name": f"{name} {t}", "fun": Atom(fun), "opts": kw, "schedule": (Atom(sname), sargs),
                         "type": Atom(t), "params": arrs(P0, t), "grads": [arrs(g, t) for g in GRADS],
                         "expected": [arrs(p, t) for p in run(t)]})

    scheds = [{"fun": Atom(f), "args": a, "values": schedule_values(m)} for f, a, m in SCHEDULES]
    # SequentialLR: a linear warmup over 4 steps into a cosine decay over 10.
    seq = schedule_values(lambda o: S.SequentialLR(
        o, [S.LinearLR(o, 0.1, 1.0, 4), S.CosineAnnealingLR(o, 10, 0.0)], milestones=[4]))
    joined = {"warmup": [0.01, 0.1, 4], "cosine": [0.1, 10, 0.0], "boundary": 4, "values": seq}
    clips = [clip_case(m, t) for t in ("f32", "f64") for m in (1.0, 100.0)]

    os.makedirs(os.path.join(OUT, "optim"), exist_ok=True)
    path = os.path.join(OUT, "optim", "optim.exs")
    with open(path, "w") as f:
        f.write("# Generated by test/reference/generate_optim.py (torch 1.13 and NumPy); do not edit.\n")
        f.write("%{\n  runs: [\n" + ",\n".join("    " + ex(r) for r in runs) + "\n  ],\n")
        f.write("  schedules: " + ex(scheds) + ",\n  joined: " + ex(joined) + ",\n  clip: " + ex(clips) + "\n}\n")
    print(f"{path}: {len(runs)} runs, {os.path.getsize(path)} bytes")


main()
