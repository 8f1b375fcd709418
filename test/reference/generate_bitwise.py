#!/usr/bin/python3
"""Writes test/reference/bitwise.exs: reference cases for Mx's integer bit ops
(bitwise_not/and/or/xor, left_shift, right_shift, count_leading_zeros,
population_count), quotient and bitcast, in the format of generate.py.

Run with Debian's Python: /usr/bin/python3 test/reference/generate_bitwise.py

Truth is Python's unbounded integers reduced to the dtype's width; each result
is cross-checked against numpy 1.24 where numpy has the op (np.bitwise_*,
np.invert, np.left_shift, np.right_shift, ndarray.view for bitcast; numpy has
no clz/popcount, and its floor_divide rounds down, so quotient is checked
against a - fmod(a, b) over b). Semantics (XLA's and numpy's where they exist):
  * shifts read the count as unsigned: a count >= the bit width (or negative)
    gives 0 for left shifts, and 0 or -1 (negative signed values) for right
    shifts; right shifts are arithmetic for signed types, logical for unsigned;
  * count_leading_zeros(0) is the width; both count the two's complement bits;
  * quotient truncates toward zero; a divisor of 0 gives 0 (as Mx's integer
    divide and remainder), MIN quotient -1 wraps to MIN;
  * bitwise not/and/or/xor of bools are logical (bool result).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import NP, Arr, Atom, CaseFile  # noqa: E402

INTS = ("s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64")


def bits(t):
    return np.dtype(NP[t]).itemsize * 8


def signed(t):
    return t.startswith("s")


def wrap(v, t):
    w = bits(t)
    v %= 1 << w
    return v - (1 << w) if signed(t) and v >= 1 << (w - 1) else v


def arr(t, values, shape=None):
    """values (Python ints or a numpy array, wrapped to t) as a numpy array of t, never through floats."""
    flat = values.ravel().tolist() if isinstance(values, np.ndarray) else (values if isinstance(values, list) else [values])
    out = np.array([wrap(int(v), t) for v in flat], dtype=NP[t]) if flat else np.zeros(0, NP[t])
    default = values.shape if isinstance(values, np.ndarray) else ((len(values),) if isinstance(values, list) else ())
    return out.reshape(shape if shape is not None else default)


def shape_str(s):
    return "[" + ",".join(str(d) for d in s) + "]"


def specials(t):
    w = bits(t)
    if signed(t):
        lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
        return [0, 1, -1, 2, -2, 7, -7, 100 % hi, lo, hi, lo + 1, hi - 1]
    hi = (1 << w) - 1
    return [0, 1, 2, 7, 100 % hi, hi, hi - 1, 1 << (w - 1), (1 << (w - 1)) - 1]


def random_ints(rng, t, shape):
    w = bits(t)
    lo = -(1 << (w - 1)) if signed(t) else 0
    raw = rng.integers(0, 1 << 62, size=int(np.prod(shape)), dtype=np.int64)
    hi_bits = rng.integers(0, 4, size=raw.size, dtype=np.int64)
    vals = [((int(h) << 62) | int(r)) % (1 << w) + lo for h, r in zip(hi_bits, raw)]
    return arr(t, vals, shape)


# ---- the truth, per element (Python ints) ----------------------------------------------


def t_not(x, t):
    return wrap(~x, t)


def t_and(a, b, t):
    return wrap(a & b, t)


def t_or(a, b, t):
    return wrap(a | b, t)


def t_xor(a, b, t):
    return wrap(a ^ b, t)


def t_shl(a, b, t):
    n = b % (1 << bits(t))  # the count read as unsigned
    return wrap(a << n, t) if n < bits(t) else 0


def t_shr(a, b, t):
    n = b % (1 << bits(t))
    if n >= bits(t):
        return -1 if a < 0 else 0
    return a >> n  # Python's >> is arithmetic; unsigned values are non-negative, so logical


def t_clz(x, t):
    u = x % (1 << bits(t))
    return bits(t) - u.bit_length()


def t_popcount(x, t):
    return bin(x % (1 << bits(t))).count("1")


def t_quotient(a, b, t):
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return wrap(q if (a < 0) == (b < 0) else -q, t)


UNARY = {"bitwise_not": t_not, "count_leading_zeros": t_clz, "population_count": t_popcount}
BINARY = {"bitwise_and": t_and, "bitwise_or": t_or, "bitwise_xor": t_xor, "left_shift": t_shl,
          "right_shift": t_shr, "quotient": t_quotient}


def numpy_of(op, a, b):
    """numpy's result where numpy has the op (None where it has none)."""
    with np.errstate(all="ignore"):
        if op == "bitwise_not":
            return np.invert(a)
        if op == "bitwise_and":
            return np.bitwise_and(a, b)
        if op == "bitwise_or":
            return np.bitwise_or(a, b)
        if op == "bitwise_xor":
            return np.bitwise_xor(a, b)
        if op == "left_shift":
            return np.left_shift(a, b)
        if op == "right_shift":
            return np.right_shift(a, b)
        if op == "quotient":
            a2, b2 = np.broadcast_arrays(a, b)
            safe = np.where(b2 == 0, 1, b2)
            q = (a2 - np.fmod(a2, safe)) // safe
            # numpy's MIN // -1 is MIN on this machine; 0 where the divisor is 0 (Mx's choice)
            return np.where(b2 == 0, 0, q).astype(np.result_type(a, b))
    return None


def apply_unary(op, a, t):
    f = UNARY[op]
    return arr(t, [f(int(x), t) for x in a.ravel()], a.shape)


def apply_binary(op, a, b, t):
    f = BINARY[op]
    a2, b2 = np.broadcast_arrays(a, b)
    return arr(t, [f(int(x), int(y), t) for x, y in zip(a2.ravel(), b2.ravel())], a2.shape)


def crosscheck(name, op, a, b, truth):
    theirs = numpy_of(op, a, b)
    if theirs is None:
        return
    assert theirs.dtype == truth.dtype and np.array_equal(theirs, truth), \
        f"{name}: numpy {theirs.ravel().tolist()} vs truth {truth.ravel().tolist()}"


def main():
    rng = np.random.default_rng(20261206)
    cf = CaseFile("bitwise", "generate_bitwise.py (Python integers, cross-checked with numpy)")

    for t in INTS:
        s = arr(t, specials(t))
        for op in UNARY:
            out = apply_unary(op, s, t)
            crosscheck(op, op, s, None, out)
            cf.add(f"{op} {t} specials", op, [Arr(t, s)], Arr(t, out))
            x = random_ints(rng, t, (3, 4))
            cf.add(f"{op} {t} [3,4]", op, [Arr(t, x)], Arr(t, apply_unary(op, x, t)))
        cf.add(f"count_leading_zeros {t} powers of two", "count_leading_zeros",
               [Arr(t, arr(t, [1 << k for k in range(bits(t))]))],
               Arr(t, arr(t, [bits(t) - 1 - k for k in range(bits(t))])))

        for op in ("bitwise_and", "bitwise_or", "bitwise_xor", "quotient"):
            a = s.reshape(-1, 1)
            b = s if op != "quotient" else arr(t, specials(t) + [3, -3 if signed(t) else 5])
            out = apply_binary(op, a, b, t)
            name = f"{op} {t} specials {shape_str(a.shape)} {shape_str(b.shape)}"
            crosscheck(name, op, a, b, out)
            cf.add(name, op, [Arr(t, a), Arr(t, b)], Arr(t, out))
            x, y = random_ints(rng, t, (3, 4)), random_ints(rng, t, (4,))
            if op == "quotient":  # small divisors too, so quotients are not mostly 0 and +-1
                y = arr(t, [3, -7 if signed(t) else 7, 1, 0])
            out = apply_binary(op, x, y, t)
            crosscheck(op, op, x, y, out)
            cf.add(f"{op} {t} [3,4] [4]", op, [Arr(t, x), Arr(t, y)], Arr(t, out))

        w = bits(t)
        counts = [0, 1, 3, w - 1, w, w + 1, 2 * w - 1] + ([-1, -w, 1 - (1 << (w - 1))] if signed(t) else [(1 << w) - 1])
        counts = [c for c in counts if wrap(c, t) == c]  # every count fits t
        for op in ("left_shift", "right_shift"):
            a = s.reshape(-1, 1)
            b = arr(t, counts)
            out = apply_binary(op, a, b, t)
            name = f"{op} {t} specials by counts {shape_str(a.shape)} {shape_str(b.shape)}"
            crosscheck(name, op, a, b, out)
            cf.add(name, op, [Arr(t, a), Arr(t, b)], Arr(t, out))
            x = random_ints(rng, t, (2, 3))
            y = arr(t, rng.integers(0, w, size=3))
            out = apply_binary(op, x, y, t)
            crosscheck(op, op, x, y, out)
            cf.add(f"{op} {t} [2,3] [3]", op, [Arr(t, x), Arr(t, y)], Arr(t, out))
            out = apply_binary(op, x, np.array(3, NP[t]), t)
            cf.add(f"{op} {t} [2,3] with the number 3", op, [Arr(t, x), 3], Arr(t, out))

    # Scalars, empty arrays, and mixed signedness (s8 with u8 promotes to s16, in numpy and Nx).
    x = arr("s32", [-5])
    cf.add("bitwise_and s32 [] []", "bitwise_and", [Arr("s32", x.reshape(())), Arr("s32", arr("s32", 6).reshape(()))],
           Arr("s32", arr("s32", 2).reshape(())))
    cf.add("left_shift s64 [0,3] [3]", "left_shift", [Arr("s64", np.zeros((0, 3), np.int64)), Arr("s64", arr("s64", [1, 2, 3]))],
           Arr("s64", np.zeros((0, 3), np.int64)))
    a8, b8 = arr("s8", [-1, 100, -128]), arr("u8", [255, 200, 1])
    for op in ("bitwise_and", "bitwise_or", "bitwise_xor", "quotient"):
        out = apply_binary(op, a8.astype(np.int16), b8.astype(np.int16), "s16")
        crosscheck(f"{op} s8 u8", op, a8, b8, out)
        cf.add(f"{op} s8 [3] u8 [3] (s16)", op, [Arr("s8", a8), Arr("u8", b8)], Arr("s16", out))

    # Bools: not/and/or/xor are logical and stay bool.
    p, q = np.array([True, True, False, False]), np.array([True, False, True, False])
    cf.add("bitwise_not bool", "bitwise_not", [Arr("bool", p)], Arr("bool", ~p))
    cf.add("bitwise_and bool", "bitwise_and", [Arr("bool", p), Arr("bool", q)], Arr("bool", p & q))
    cf.add("bitwise_or bool", "bitwise_or", [Arr("bool", p), Arr("bool", q)], Arr("bool", p | q))
    cf.add("bitwise_xor bool", "bitwise_xor", [Arr("bool", p), Arr("bool", q)], Arr("bool", p ^ q))

    # bitcast: numpy's view, bit for bit (NaN payloads, -0.0, infinities included).
    f32 = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 1e-45, 3.4e38], np.float32)
    nan_payload = np.array([0x7FC00001, 0xFFFFFFFF, 0x7F800001], np.uint32)
    f64 = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 5e-324, 1.7e308], np.float64)
    u64 = np.array([0, 1, 2**63, 2**64 - 1, 0x7FF0000000000000, 0x7FF8000000000001], np.uint64)
    f16 = np.array([0.0, -0.0, 1.0, -2.5, np.inf, np.nan, 6e-8], np.float16)
    views = [("f32", f32, ["s32", "u32"]), ("u32", nan_payload, ["f32", "s32"]), ("f64", f64, ["s64", "u64"]),
             ("u64", u64, ["f64", "s64"]), ("s64", u64.view(np.int64), ["u64"]), ("s8", arr("s8", specials("s8")), ["u8"]),
             ("u16", arr("u16", specials("u16")), ["s16", "f16"]), ("f16", f16, ["u16", "s16"])]
    for t, a, targets in views:
        for target in targets:
            cf.add(f"bitcast {t} [{a.size}] to {target}", "bitcast", [Arr(t, a), Atom(target)],
                   Arr(target, a.view(NP[target])))
    m = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    cf.add("bitcast f32 [2,3] to s32", "bitcast", [Arr("f32", m), Atom("s32")], Arr("s32", m.view(np.int32)))
    cf.add("bitcast s32 [0,2] to f32", "bitcast", [Arr("s32", np.zeros((0, 2), np.int32)), Atom("f32")],
           Arr("f32", np.zeros((0, 2), np.float32)))
    cf.write()


if __name__ == "__main__":
    main()
