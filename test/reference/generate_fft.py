"""Reference values for c_src/test/test_fft.c from numpy's np.fft (pocketfft).

Run with Debian's python: /usr/bin/python3 test/reference/generate_fft.py

Inputs are not stored: both sides draw them from splitmix64 (seeded by n), as
2u - 1 with u = (z >> 11) * 2^-53, which is exact in double, so C and Python
see bit-identical inputs. Per n, in draw order: x (n complex, re/im
interleaved) for fft/ifft, r (n reals) for rfft, y (n//2+1 complex) for irfft
(its DC and Nyquist imaginary parts are nonzero on purpose: irfft ignores them).

File c_src/test/data/fft_ref.bin: a text line "MXFFT1 <records>", then per
record a text line "<kind> <n> <count>" followed by <count> little-endian
doubles: fft(x) and ifft(x) (2n each), rfft(r) (2(n//2+1)), irfft(y, n) (n).
"""
import os
import sys

import numpy as np

SIZES = [1, 2, 3, 4, 5, 7, 8, 12, 16, 17, 30, 64, 97, 100, 128, 210, 256, 509, 1000, 1024, 4096, 4099]
MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self, k):
        return np.array([2.0 * ((self.next() >> 11) * 2.0**-53) - 1.0 for _ in range(k)], dtype=np.float64)


def inputs(n):
    g = SplitMix64(0x5EED0000 + n)
    xv = g.uniform(2 * n)
    x = xv[0::2] + 1j * xv[1::2]
    r = g.uniform(n)
    yv = g.uniform(2 * (n // 2 + 1))
    y = yv[0::2] + 1j * yv[1::2]
    return x, r, y


def interleave(z):
    out = np.empty(2 * len(z), dtype=np.float64)
    out[0::2] = z.real
    out[1::2] = z.imag
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "c_src", "test", "data", "fft_ref.bin")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    records = []
    for n in SIZES:
        x, r, y = inputs(n)
        records.append(("fft", n, interleave(np.fft.fft(x))))
        records.append(("ifft", n, interleave(np.fft.ifft(x))))
        records.append(("rfft", n, interleave(np.fft.rfft(r))))
        records.append(("irfft", n, np.fft.irfft(y, n)))
    with open(path, "wb") as f:
        f.write(b"MXFFT1 %d\n" % len(records))
        for kind, n, v in records:
            f.write(b"%s %d %d\n" % (kind.encode(), n, len(v)))
            f.write(np.ascontiguousarray(v, dtype="<f8").tobytes())
    print("wrote %s (%d bytes, numpy %s)" % (os.path.relpath(path), os.path.getsize(path), np.__version__))


if __name__ == "__main__":
    sys.exit(main())
