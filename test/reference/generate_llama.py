"""Tiny Llama checkpoints in MLX's format and their expected outputs, for test/mx/nn/llama_test.exs.

Run with /usr/bin/python3 (Debian's torch and numpy), optionally naming the variants to write.
For each variant it writes
test/fixtures/llama_tiny/<variant>/{config.json, model.safetensors, expected.safetensors}:
random weights under the Hugging Face / mlx-lm names (quantized ones packed with MLX's affine
scheme), and from a Llama forward written here by hand in torch, in float64 from the stored
weights (dequantized where quantized): the full-prompt logits, the logits of decoding the same
prompt in chunks with a KV cache, and the greedy continuation (whose top-2 logit margins are
checked to be far above float32 rounding, so argmax cannot flip).
"""
import json
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "llama_tiny")

BASE = {
    "model_type": "llama",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "vocab_size": 97,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
}

# name -> (config changes, weight dtype, quantization or None, scales dtype)
VARIANTS = {
    "f32": ({}, "f32", None, None),
    # head_dim given explicitly (not hidden/heads), biases on, traditional (adjacent-pair) RoPE
    # with linear scaling, tied embeddings.
    "bf16": ({"head_dim": 16, "rope_traditional": True, "attention_bias": True, "mlp_bias": True,
              "rope_scaling": {"type": "linear", "factor": 2.0}, "tie_word_embeddings": True,
              "rope_theta": 500.0}, "bf16", None, None),
    "f16": ({"tie_word_embeddings": True}, "f16", None, None),
    # Tied quantized embedding: looked up by rows and used as the output layer.
    "q4": ({"tie_word_embeddings": True}, "f32", {"group_size": 32, "bits": 4}, "f16"),
    "q8": ({"num_key_value_heads": 1}, "f32", {"group_size": 32, "bits": 8}, "f32"),
    # Llama 3.1's RoPE scaling, with a short original context so that at head_dim 8 the four
    # wavelengths 2π·10000^(2i/8) (6.3, 63, 628, 6283) fall in all three bands (kept below
    # 64/4 = 16, interpolated between, scaled beyond 64); tied dense embedding.
    "llama3": ({"rope_scaling": {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                "tie_word_embeddings": True}, "f32", None, None),
}

PROMPT = [1, 17, 42, 5, 88, 23, 64, 9, 31]
CHUNKS = [4, 3, 1, 1]  # the prompt decoded incrementally: 4 tokens, then 3, then 1 and 1
GREEDY = 16


def head_dim(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def random_weights(cfg, gen):
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, nkv, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim(cfg)

    def lin(o, n):
        return torch.randn(o, n, generator=gen, dtype=torch.float64) / n ** 0.5

    def vec(n, mean=0.0):
        return mean + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)

    # Small embeddings, so tied variants do not just repeat the last token.
    w = {"model.embed_tokens.weight": 0.25 * torch.randn(v, h, generator=gen, dtype=torch.float64)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "self_attn.q_proj.weight"] = lin(nh * d, h)
        w[p + "self_attn.k_proj.weight"] = lin(nkv * d, h)
        w[p + "self_attn.v_proj.weight"] = lin(nkv * d, h)
        w[p + "self_attn.o_proj.weight"] = lin(h, nh * d)
        w[p + "mlp.gate_proj.weight"] = lin(i, h)
        w[p + "mlp.up_proj.weight"] = lin(i, h)
        w[p + "mlp.down_proj.weight"] = lin(h, i)
        w[p + "input_layernorm.weight"] = vec(h, 1.0)
        w[p + "post_attention_layernorm.weight"] = vec(h, 1.0)
        if cfg.get("attention_bias"):
            for n, o in [("q", nh * d), ("k", nkv * d), ("v", nkv * d), ("o", h)]:
                w[p + f"self_attn.{n}_proj.bias"] = vec(o)
        if cfg.get("mlp_bias"):
            for n, o in [("gate", i), ("up", i), ("down", h)]:
                w[p + f"mlp.{n}_proj.bias"] = vec(o)
    w["model.norm.weight"] = vec(h, 1.0)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = lin(v, h)
    return w


def quantize(w, group_size, bits):
    """MLX's affine quantization (mlx/backend/cpu/quantized.cpp), in float32: packed u32, scales, biases."""
    w = w.astype(np.float32)
    rows, k = w.shape
    g = w.reshape(rows, k // group_size, group_size)
    n = np.float32(2 ** bits - 1)
    wmax, wmin = g.max(axis=2), g.min(axis=2)
    neg = np.abs(wmin) > np.abs(wmax)
    scale = np.maximum((wmax - wmin) / n, np.float32(1e-7))
    scale = np.where(neg, scale, -scale).astype(np.float32)
    edge = np.where(neg, wmin, wmax).astype(np.float32)
    q0 = np.rint(edge / scale)
    nz = q0 != 0
    scale = np.where(nz, edge / np.where(nz, q0, 1), scale).astype(np.float32)
    bias = np.where(nz, edge, 0).astype(np.float32)
    q = np.clip(np.rint((g - bias[..., None]) / scale[..., None]), 0, n).astype(np.uint32)
    per = 32 // bits
    q = q.reshape(rows, k // per, per)
    packed = np.zeros((rows, k // per), dtype=np.uint32)
    for j in range(per):
        packed |= q[:, :, j] << np.uint32(bits * j)
    return packed, scale, bias


def dequantize(packed, scales, biases, group_size, bits):
    rows = packed.shape[0]
    per = 32 // bits
    q = np.stack([(packed >> np.uint32(bits * j)) & np.uint32(2 ** bits - 1) for j in range(per)], axis=2)
    q = q.reshape(rows, -1, group_size).astype(np.float64)
    return (scales.astype(np.float64)[..., None] * q + biases.astype(np.float64)[..., None]).reshape(rows, -1)


def store(w, cfg, wtype, quant, stype):
    """The tensors as written to the checkpoint (numpy, or torch for bf16) and the float64
    weights the reference computes with (what the checkpoint's values mean)."""
    tensors, exact = {}, {}
    for name, t in w.items():
        is_matrix = name.endswith(".weight") and t.dim() == 2
        if quant and is_matrix:
            packed, s, b = quantize(t.numpy(), quant["group_size"], quant["bits"])
            s, b = s.astype(stype_np(stype)), b.astype(stype_np(stype))
            base = name[: -len(".weight")]
            tensors[name], tensors[base + ".scales"], tensors[base + ".biases"] = packed, s, b
            exact[name] = torch.from_numpy(dequantize(packed, s, b, quant["group_size"], quant["bits"]))
        elif wtype == "bf16":
            tb = t.to(torch.bfloat16)
            tensors[name] = tb
            exact[name] = tb.to(torch.float64)
        else:
            a = t.numpy().astype(stype_np(wtype))
            tensors[name] = a
            exact[name] = torch.from_numpy(a.astype(np.float64))
    return tensors, exact


def stype_np(t):
    return {"f32": np.float32, "f16": np.float16}[t]


DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64",
          np.dtype(np.uint32): "U32", np.dtype(np.int32): "I32"}


def write_safetensors(path, tensors):
    """The safetensors format by hand: u64 header length, JSON header, raw little-endian data."""
    header, blobs, off = {"__metadata__": {"format": "mlx"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t, torch.Tensor):  # bf16: numpy has no such dtype
            data, dtype, shape = t.contiguous().view(torch.int16).numpy().tobytes(), "BF16", list(t.shape)
        else:
            a = np.ascontiguousarray(t).astype(t.dtype.newbyteorder("<"))
            data, dtype, shape = a.tobytes(), DTYPES[t.dtype], list(t.shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---- the reference forward (HF LlamaForCausalLM / mlx-lm models/llama.py), float64 ----

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def llama3_inv_freq(inv_freq, s):
    """HF's _compute_llama3_parameters (modeling_rope_utils.py), in float64."""
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old = s["original_max_position_embeddings"]
    wavelen = 2 * torch.pi / inv_freq
    inv_l = torch.where(wavelen > old / low, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < old / high) & ~(wavelen > old / low)
    return torch.where(medium, smoothed, inv_l)


def rope(x, offset, cfg):
    """HF's rotate-half convention, or adjacent pairs with rope_traditional; linear scaling
    divides positions by the factor, llama3 rescales the frequencies."""
    d = x.shape[-1]
    scaling = cfg.get("rope_scaling") or {}
    llama3 = scaling.get("rope_type") == "llama3"
    factor = 1.0 if llama3 else scaling.get("factor", 1.0)
    pos = (offset + torch.arange(x.shape[-2], dtype=torch.float64)) / factor
    inv_freq = 1.0 / cfg["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    if llama3:
        inv_freq = llama3_inv_freq(inv_freq, scaling)
    ang = pos[:, None] * inv_freq[None, :]
    if cfg.get("rope_traditional"):
        x1, x2 = x[..., 0::2], x[..., 1::2]
        c, s = ang.cos(), ang.sin()
        return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2)
    emb = torch.cat([ang, ang], dim=-1)
    rotate_half = torch.cat([-x[..., d // 2:], x[..., : d // 2]], dim=-1)
    return x * emb.cos() + rotate_half * emb.sin()


def linear(x, w, name):
    y = x @ w[name + ".weight"].T
    return y + w[name + ".bias"] if name + ".bias" in w else y


def forward(w, cfg, tokens, cache):
    """Logits (L, vocab) for tokens after the cached ones; cache is a list of (k, v) per layer."""
    nh, nkv, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim(cfg)
    eps, L = cfg["rms_norm_eps"], len(tokens)
    offset = 0 if cache[0] is None else cache[0][0].shape[1]
    x = w["model.embed_tokens.weight"][torch.tensor(tokens)]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = linear(h, w, p + "self_attn.q_proj").view(L, nh, d).transpose(0, 1)
        k = linear(h, w, p + "self_attn.k_proj").view(L, nkv, d).transpose(0, 1)
        v = linear(h, w, p + "self_attn.v_proj").view(L, nkv, d).transpose(0, 1)
        q, k = rope(q, offset, cfg), rope(k, offset, cfg)
        if cache[l] is not None:
            k, v = torch.cat([cache[l][0], k], dim=1), torch.cat([cache[l][1], v], dim=1)
        cache[l] = (k, v)
        # GQA: query head i reads key/value head i // (nh / nkv) (HF's repeat_kv).
        rep = nh // nkv
        kr, vr = k.repeat_interleave(rep, dim=0), v.repeat_interleave(rep, dim=0)
        scores = q @ kr.transpose(1, 2) * d ** -0.5
        S = kr.shape[1]
        allowed = (torch.arange(L)[:, None] + offset) >= torch.arange(S)[None, :]
        scores = scores.masked_fill(~allowed, float("-inf"))
        att = (scores.softmax(-1) @ vr).transpose(0, 1).reshape(L, nh * d)
        x = x + linear(att, w, p + "self_attn.o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = linear(h, w, p + "mlp.gate_proj")
        x = x + linear(torch.nn.functional.silu(gate) * linear(h, w, p + "mlp.up_proj"), w, p + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    out = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    return x @ out.T


def main(only):
    for i, (name, (changes, wtype, quant, stype)) in enumerate(VARIANTS.items()):
        if only and name not in only:
            continue
        cfg = dict(BASE, **changes)
        if quant:
            cfg["quantization"] = dict(quant)
        gen = torch.Generator().manual_seed(1000 + i)
        tensors, w = store(random_weights(cfg, gen), cfg, wtype, quant, stype)
        n = cfg["num_hidden_layers"]

        full = forward(w, cfg, PROMPT, [None] * n)
        cache, steps, start = [None] * n, [], 0
        for c in CHUNKS:
            steps.append(forward(w, cfg, PROMPT[start:start + c], cache))
            start += c
        incremental = torch.cat(steps)

        cache, greedy, margin = [None] * n, [], float("inf")
        last = forward(w, cfg, PROMPT, cache)[-1]
        for _ in range(GREEDY):
            top2 = last.topk(2).values
            margin = min(margin, float(top2[0] - top2[1]))
            greedy.append(int(last.argmax()))
            last = forward(w, cfg, greedy[-1:], cache)[-1]
        # f32 rounding moves these logits by ~1e-5; a margin far above that keeps argmax stable.
        assert margin > 1e-3, f"{name}: greedy top-2 margin {margin} too small; change the seed"

        out = os.path.join(ROOT, name)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        write_safetensors(os.path.join(out, "model.safetensors"), tensors)
        write_safetensors(os.path.join(out, "expected.safetensors"), {
            "prompt": np.array(PROMPT, dtype=np.int32),
            "chunks": np.array(CHUNKS, dtype=np.int32),
            "logits": full.numpy(),
            "incremental_logits": incremental.numpy(),
            "greedy": np.array(greedy, dtype=np.int32),
        })
        print(name, "greedy", greedy, "min margin %.4f" % margin,
              "max |logit| %.2f" % float(full.abs().max()))


if __name__ == "__main__":
    # Variant names to (re)generate only those (each keeps its seed); none: all of them.
    main(sys.argv[1:])
