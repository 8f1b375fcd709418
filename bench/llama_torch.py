"""PyTorch 1.13 CPU side of bench/llama.exs: the same Llama checkpoint, prefill and cached decoding.

Usage: /usr/bin/python3 bench/llama_torch.py DIR PROMPT_LEN DECODE_STEPS REPS [THREADS]
(THREADS: torch.set_num_threads, default torch's own) prints "prefill_tokens_per_s decode_tokens_per_s" (medians over REPS) and the greedy ids.
The forward is written by hand (as test/reference/generate_llama.py, in f32 here, with the RoPE
tables built once), the KV cache concatenates like Mx.NN.Llama's.
"""
import json
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch

torch.set_grad_enabled(False)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", f"{name}: the bench writes f32 only"
        b, e = meta["data_offsets"]
        a = np.frombuffer(data, dtype="<f4", count=(e - b) // 4, offset=8 + n + b)
        out[name] = torch.from_numpy(a.copy()).reshape(meta["shape"])
    return out


class Llama:
    def __init__(self, d):
        self.cfg = c = json.load(open(os.path.join(d, "config.json")))
        self.w = load_safetensors(os.path.join(d, "model.safetensors"))
        self.nh, self.nkv = c["num_attention_heads"], c["num_key_value_heads"]
        self.hd = c.get("head_dim") or c["hidden_size"] // self.nh
        inv = 1.0 / c["rope_theta"] ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd)
        ang = torch.arange(4096, dtype=torch.float32)[:, None] * inv[None, :]
        emb = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()

    def rope(self, x, offset):
        L, h = x.shape[-2], self.hd // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
        return x * self.cos[offset:offset + L] + rot * self.sin[offset:offset + L]

    def norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg["rms_norm_eps"]) * w

    def forward(self, tokens, cache):
        w, c = self.w, self.cfg
        L = tokens.shape[0]
        offset = 0 if cache[0] is None else cache[0][0].shape[1]
        x = w["model.embed_tokens.weight"][tokens]
        rep = self.nh // self.nkv
        for l in range(c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = self.norm(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(L, self.nh, self.hd).transpose(0, 1)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(L, self.nkv, self.hd).transpose(0, 1)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(L, self.nkv, self.hd).transpose(0, 1)
            q, k = self.rope(q, offset), self.rope(k, offset)
            if cache[l] is not None:
                k, v = torch.cat([cache[l][0], k], dim=1), torch.cat([cache[l][1], v], dim=1)
            cache[l] = (k, v)
            kr, vr = k.repeat_interleave(rep, dim=0), v.repeat_interleave(rep, dim=0)
            s = q @ kr.transpose(1, 2) * self.hd ** -0.5
            if L > 1:
                S = kr.shape[1]
                allowed = (torch.arange(L)[:, None] + offset) >= torch.arange(S)[None, :]
                s = s.masked_fill(~allowed, float("-inf"))
            att = (s.softmax(-1) @ vr).transpose(0, 1).reshape(L, self.nh * self.hd)
            x = x + att @ w[p + "self_attn.o_proj.weight"].T
            h = self.norm(x, w[p + "post_attention_layernorm.weight"])
            g = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
            x = x + g @ w[p + "mlp.down_proj.weight"].T
        x = self.norm(x, w["model.norm.weight"])
        return x @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T


def main():
    d, plen, steps, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if len(sys.argv) > 5:
        torch.set_num_threads(int(sys.argv[5]))
    m = Llama(d)
    n = m.cfg["num_hidden_layers"]
    prompt = torch.tensor([(7 * i + 1) % m.cfg["vocab_size"] for i in range(plen)])
    prefill, decode, ids = [], [], []
    for r in range(reps + 1):  # the first round warms up
        cache = [None] * n
        t0 = time.perf_counter()
        logits = m.forward(prompt, cache)
        t1 = time.perf_counter()
        tok, ids = int(logits[-1].argmax()), []
        for _ in range(steps):
            ids.append(tok)
            tok = int(m.forward(torch.tensor([tok]), cache)[-1].argmax())
        t2 = time.perf_counter()
        if r > 0:
            prefill.append(plen / (t1 - t0))
            decode.append(steps / (t2 - t1))
    print(statistics.median(prefill), statistics.median(decode))
    print(" ".join(map(str, ids)))


if __name__ == "__main__":
    main()
