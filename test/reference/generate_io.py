"""Fixtures for Mx.IO (test/mx/io_test.exs): files written by NumPy (np.save, np.savez,
np.savez_compressed, np.lib.format.write_array) and, since Debian has no python3-safetensors
or gguf package, safetensors and GGUF files written here from their specs:

  * safetensors: https://github.com/huggingface/safetensors README "Format" (v0.4): u64 LE
    header length, JSON header ({"__metadata__": {str: str}, name: {dtype, shape,
    data_offsets}}), padded with spaces to 8 bytes, then the data, tensors tiling it.
  * GGUF version 3: ggml docs/gguf.md (ggml-org/ggml, 2024): header, typed key/values,
    tensor infos (dims innermost first), data aligned to general.alignment (32).
    Q8_0 and Q4_0 blocks as ggml-quants.c quantize_row_q8_0_ref / quantize_row_q4_0_ref.

Writes test/fixtures/io/*, with test/fixtures/io/expected.exs (expected arrays as raw bytes).
Run with /usr/bin/python3 test/reference/generate_io.py.
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import OUT, Arr, ex  # noqa: E402

FIX = os.path.join(os.path.dirname(OUT), "fixtures", "io")
os.makedirs(FIX, exist_ok=True)
rng = np.random.default_rng(13)
expected = []  # (file, tensor name, Arr)

NP_OF = {"bool": np.bool_, "u8": np.uint8, "s8": np.int8, "u16": np.uint16, "s16": np.int16,
         "u32": np.uint32, "s32": np.int32, "u64": np.uint64, "s64": np.int64,
         "f16": np.float16, "f32": np.float32, "f64": np.float64, "c64": np.complex64, "c128": np.complex128}


class RawArr(Arr):
    """Any dtype (complex and bf16 bit patterns too): just the raw little-endian bytes."""

    def __init__(self, t, data):
        self.t = t
        self.a = np.asarray(data)


def values(t, shape):
    n = int(np.prod(shape))
    if t == "bool":
        return (np.arange(n) % 3 == 0).reshape(shape)
    if t[0] in "us":
        info = np.iinfo(NP_OF[t])
        v = np.array([info.min, info.max, 0, 1, 7, -3 if t[0] == "s" else 3] * n, dtype=object)[:n]
        return np.array(list(v), dtype=NP_OF[t]).reshape(shape)
    if t[0] == "c":
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(NP_OF[t]).reshape(shape)
    x = rng.standard_normal(n).astype(NP_OF[t])
    if n >= 3:
        x[:3] = [np.inf, -np.inf, np.nan]
    return x.reshape(shape)


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns, round to nearest even (NaN kept quiet)."""
    b = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), r)


def path(name):
    return os.path.join(FIX, name)


# ---- npy / npz --------------------------------------------------------------------------
for t in NP_OF:
    a = values(t, (2, 3))
    np.save(path(f"{t}.npy"), a)
    expected.append((f"{t}.npy", "", RawArr(t, a)))

a = np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
np.save(path("fortran.npy"), a)
expected.append(("fortran.npy", "", RawArr("f32", np.ascontiguousarray(a))))

for t, descr in [("f64", ">f8"), ("s32", ">i4"), ("c64", ">c8"), ("u16", ">u2")]:
    a = values(t, (3, 2))
    np.save(path(f"big_{t}.npy"), a.astype(descr))
    expected.append((f"big_{t}.npy", "", RawArr(t, a)))

np.save(path("scalar.npy"), np.array(2.5, dtype=np.float32))
expected.append(("scalar.npy", "", RawArr("f32", np.array(2.5, dtype=np.float32))))
np.save(path("empty.npy"), np.zeros((0, 3), dtype=np.int64))
expected.append(("empty.npy", "", RawArr("s64", np.zeros((0, 3), dtype=np.int64))))

for version in [(2, 0), (3, 0)]:
    a = values("f32", (4,))
    name = f"v{version[0]}.npy"
    with open(path(name), "wb") as f:
        np.lib.format.write_array(f, a, version=version)
    expected.append((name, "", RawArr("f32", a)))

members = {"weights": values("f32", (3, 4)), "ids": values("s64", (5,)), "mask": values("bool", (2, 2)),
           "z": values("c128", (2,))}
np.savez(path("stored.npz"), **members)
np.savez_compressed(path("deflated.npz"), **members)
for name, a in members.items():
    t = [k for k, v in NP_OF.items() if v == a.dtype.type][0]
    expected.append(("stored.npz", name, RawArr(t, a)))
    expected.append(("deflated.npz", name, RawArr(t, a)))

# ---- safetensors ------------------------------------------------------------------------
ST = {"bool": "BOOL", "u8": "U8", "s8": "I8", "u16": "U16", "s16": "I16", "u32": "U32", "s32": "I32",
      "u64": "U64", "s64": "I64", "f16": "F16", "bf16": "BF16", "f32": "F32", "f64": "F64", "c64": "C64"}


def write_safetensors(name, tensors, metadata=None):
    """tensors: {name: (mx type, array of the stored bits)}, written in name order."""
    header, blobs, pos = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    for k in sorted(tensors):
        t, a = tensors[k]
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": ST[t], "shape": list(a.shape), "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path(name), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


tensors = {}
for t in ST:
    if t == "bf16":
        x = np.array([1.5, -2.0, 0.15625, np.inf, -np.inf, np.nan, 3.0e38, 1.0e-39], dtype=np.float32).reshape(2, 4)
        tensors["t_bf16"] = (t, bf16_bits(x))
    else:
        tensors[f"t_{t}"] = (t, values(t, (2, 4)))
tensors["scalar"] = ("f32", np.array(-1.25, dtype=np.float32))
tensors["empty"] = ("f32", np.zeros((0, 2), dtype=np.float32))
write_safetensors("all_dtypes.safetensors", tensors, {"format": "pt", "note": "généré, \"quoted\""})
for k, (t, a) in tensors.items():
    expected.append(("all_dtypes.safetensors", k, RawArr(t, a)))

model = {"model.embed.weight": ("f32", values("f32", (5, 3))),
         "model.layers.0.attn.weight": ("f16", values("f16", (3, 3))),
         "model.layers.1.attn.weight": ("f16", values("f16", (3, 3))),
         "lm_head.weight": ("bf16", bf16_bits(rng.standard_normal((5, 3)).astype(np.float32)))}
write_safetensors("model.safetensors", model)
for k, (t, a) in model.items():
    expected.append(("model.safetensors", k, RawArr(t, a)))

# ---- GGUF -------------------------------------------------------------------------------
GG_T = {"u8": 0, "s8": 1, "u16": 2, "s16": 3, "u32": 4, "s32": 5, "f32": 6, "bool": 7, "string": 8,
        "array": 9, "u64": 10, "s64": 11, "f64": 12}
PACK = {"u8": "<B", "s8": "<b", "u16": "<H", "s16": "<h", "u32": "<I", "s32": "<i", "f32": "<f",
        "bool": "<?", "u64": "<Q", "s64": "<q", "f64": "<d"}
GGML = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "s8": 24, "s16": 25, "s32": 26, "s64": 27, "f64": 28, "bf16": 30}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gval(t, v):
    if t == "string":
        return gstr(v)
    if isinstance(t, tuple):  # ("array", element type)
        et = t[1]
        body = b"".join(gval(et, x) for x in v)
        et_id = GG_T["array"] if isinstance(et, tuple) else GG_T[et]
        return struct.pack("<IQ", et_id, len(v)) + body
    return struct.pack(PACK[t], v)


def gkv(key, t, v):
    tid = GG_T["array"] if isinstance(t, tuple) else GG_T[t]
    return gstr(key) + struct.pack("<I", tid) + gval(t, v)


def q8_0(x):
    """ggml quantize_row_q8_0_ref: per block of 32, d = amax/127, q = roundf(x/d)."""
    x = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(x).max(axis=1)
    d = (amax / 127).astype(np.float32)
    idv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
    v = x * idv[:, None]
    q = (np.sign(v) * np.floor(np.abs(v).astype(np.float64) + 0.5)).astype(np.int8)  # roundf, exact in f64
    d16 = d.astype(np.float16)
    raw = b"".join(d16[i].tobytes() + q[i].tobytes() for i in range(len(d)))
    deq = d16.astype(np.float32)[:, None] * q.astype(np.float32)
    return raw, deq


def q4_0(x):
    """ggml quantize_row_q4_0_ref: d = max/-8 (max: the value of largest magnitude), q = min(15, (int8)(x/d + 8.5))."""
    x = x.reshape(-1, 32).astype(np.float32)
    idx = np.abs(x).argmax(axis=1)
    mx = x[np.arange(len(x)), idx]
    d = (mx / -8).astype(np.float32)
    idv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = np.minimum(15, np.trunc(x * idv[:, None] + np.float32(8.5)).astype(np.int8)).astype(np.uint8)
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    d16 = d.astype(np.float16)
    raw = b"".join(d16[i].tobytes() + packed[i].tobytes() for i in range(len(d)))
    deq = d16.astype(np.float32)[:, None] * (q.astype(np.float32) - np.float32(8))
    return raw, deq


def write_gguf(name, kvs, tensors, alignment=32):
    """kvs: [(key, type, value)] in file order; tensors: [(name, ggml type, shape, raw bytes)]."""
    infos, blobs, pos = b"", [], 0
    for tname, gt, shape, raw in tensors:
        dims = list(reversed(shape))
        infos += gstr(tname) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", GGML[gt], pos)
        blobs.append((pos, raw))
        pos = (pos + len(raw) + alignment - 1) // alignment * alignment
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(gkv(*kv) for kv in kvs) + infos
    head += b"\0" * ((alignment - len(head) % alignment) % alignment)
    data = bytearray()
    for off, raw in blobs:
        data += b"\0" * (off - len(data)) + raw
    with open(path(name), "wb") as f:
        f.write(head + bytes(data))


# Plain types only, keys and tensors in the order Mx.IO.save_gguf writes them (alignment
# first, then sorted keys; tensors by name): Mx's writer must reproduce this file byte for byte.
plain_kvs = [("general.alignment", "u32", 32), ("general.architecture", "string", "llama"),
             ("general.name", "string", "tiny"), ("llama.block_count", "u32", 2),
             ("llama.rope.freq_base", "f32", 10000.0), ("tokenizer.ggml.scores", ("array", "f32"), [0.0, -1.5, 2.25]),
             ("tokenizer.ggml.tokens", ("array", "string"), ["<s>", "</s>", "héllo"])]
plain = [("blk.0.ffn.weight", "f16", values("f16", (3, 4))), ("embd", "f32", values("f32", (2, 5))),
         ("ids", "s32", values("s32", (7,))), ("pos", "s64", values("s64", (1, 2, 3))),
         ("scale", "f64", values("f64", (2, 2))), ("w8", "s8", values("s8", (4,))), ("w16", "s16", values("s16", (2, 1)))]
plain.sort(key=lambda p: p[0])
write_gguf("plain.gguf", plain_kvs, [(n, t, a.shape, a.astype(a.dtype.newbyteorder("<")).tobytes()) for n, t, a in plain])
for n, t, a in plain:
    expected.append(("plain.gguf", n, RawArr(t, a)))

every_kv = [("k.u8", "u8", 200), ("k.s8", "s8", -100), ("k.u16", "u16", 60000), ("k.s16", "s16", -30000),
            ("k.u32", "u32", 4000000000), ("k.s32", "s32", -2000000000), ("k.f32", "f32", 0.5),
            ("k.bool", "bool", True), ("k.string", "string", "ünïcode"), ("k.u64", "u64", 2**64 - 1),
            ("k.s64", "s64", -2**63), ("k.f64", "f64", -0.125), ("k.nan", "f32", float("nan")),
            ("k.inf", "f64", float("-inf")), ("k.nested", ("array", ("array", "u8")), [[1, 2], [], [3]]),
            ("k.bools", ("array", "bool"), [True, False]), ("k.empty", ("array", "s32"), [])]
x8 = rng.standard_normal((2, 64)).astype(np.float32)
x8[1, 32:] *= 1e-5  # a subnormal f16 scale
x8[0, :32] = 0  # a zero scale
raw8, deq8 = q8_0(x8)
x4 = rng.standard_normal((3, 32)).astype(np.float32)
x4[1] = -np.abs(x4[1])  # a positive scale (d = max/-8 with a negative max)
raw4, deq4 = q4_0(x4)
bf = bf16_bits(rng.standard_normal((2, 2)).astype(np.float32))
quant = [("q8", "q8_0", (2, 64), raw8), ("q4", "q4_0", (3, 32), raw4), ("bf", "bf16", (2, 2), bf.tobytes()),
         ("vec", "f32", (3,), np.array([1, 2, 3], np.float32).tobytes())]
write_gguf("quant.gguf", [("general.alignment", "u32", 64)] + every_kv, quant, alignment=64)
expected += [("quant.gguf", "q8", RawArr("f32", deq8.reshape(2, 64))), ("quant.gguf", "q4", RawArr("f32", deq4.reshape(3, 32))),
             ("quant.gguf", "bf", RawArr("bf16", bf)), ("quant.gguf", "vec", RawArr("f32", np.array([1, 2, 3], np.float32)))]

# Mx.IO.save_gguf's quantized types: f32 sources (the ".src" tensors) and their Q8_0 / Q4_0 blocks,
# tensors by name as Mx writes them: Mx must write this file byte for byte from the sources.
s8 = rng.standard_normal((3, 64)).astype(np.float32)
s8[0, :32] = np.arange(32, dtype=np.float32) - np.float32(15.5)  # amax 16.5
s8[0, 32:] = (np.arange(32) % 8 - 3).astype(np.float32) + np.float32(0.5)  # d = 4.5/127: no exact halves
s8[1, :32] = 0  # a zero scale: every q 0
s8[1, 32:] = np.float32(0.49999997)  # roundf of 0.49999997 * id: ties and near-ties away from zero
s8[1, 32] = np.float32(127)  # d = 1, id = 1
s8[1, 33:36] = [2.5, -2.5, -0.5]  # halves round away from zero (not to even)
s8[2, 32:] *= np.float32(3e-6)  # a subnormal f16 scale
s4 = rng.standard_normal((2, 2, 32)).astype(np.float32)
s4[0, 0] = -np.abs(s4[0, 0])  # a negative max: positive d
s4[0, 1, :2] = [-7.0, 7.0]  # equal magnitudes: the first one is max
s4[0, 1, 2:] = np.clip(s4[0, 1, 2:], -6.9, 6.9)
s4[1, 0] = 0  # a zero scale: every q 8
s4[1, 1] = np.linspace(-1, 1, 32, dtype=np.float32)
wraw8, wdeq8 = q8_0(s8)
wraw4, wdeq4 = q4_0(s4)
written = [("q4", "q4_0", s4.shape, wraw4), ("q4.src", "f32", s4.shape, s4.tobytes()),
           ("q8", "q8_0", s8.shape, wraw8), ("q8.src", "f32", s8.shape, s8.tobytes())]
write_gguf("written_quant.gguf", [("general.alignment", "u32", 32)], written)
expected += [("written_quant.gguf", "q4", RawArr("f32", wdeq4.reshape(s4.shape))),
             ("written_quant.gguf", "q4.src", RawArr("f32", s4)),
             ("written_quant.gguf", "q8", RawArr("f32", wdeq8.reshape(s8.shape))),
             ("written_quant.gguf", "q8.src", RawArr("f32", s8))]

# ---- expected values --------------------------------------------------------------------
# Beside the fixtures, not in test/reference/ (Mx.ReferenceCase reads every .exs there as op cases).
out = os.path.join(FIX, "expected.exs")
with open(out, "w") as f:
    f.write("# Generated by test/reference/generate_io.py (NumPy and the format specs); do not edit.\n")
    f.write("# {file under test/fixtures/io, tensor name (\"\" for .npy), {:array, type, shape, hex}}\n[\n")
    f.write(",\n".join("  " + ex((file, name, arr)) for file, name, arr in expected))
    f.write("\n]\n")
total = sum(os.path.getsize(path(n)) for n in os.listdir(FIX) if n != "expected.exs")
print(f"{out}: {len(expected)} arrays; {len(os.listdir(FIX)) - 1} fixture files, {total} bytes")
