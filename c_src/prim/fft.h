/* fft.h: discrete Fourier transforms of any length, on interleaved complex
 * doubles (re, im). A standalone component: the engine's FFT primitives call it.
 *
 * Lengths whose prime factors are small run a mixed-radix Stockham FFT
 * (radix 8, 4, 2, 3, 5 butterflies and a generic odd radix up to 61); other
 * lengths run Bluestein's chirp-z algorithm over a convolution of 5-smooth
 * length M >= 2n - 1, so every length costs O(n log n). Which one a length
 * gets is decided by an operation-count model (fft.c). Transforms are computed in double; c64
 * inputs are converted to double, transformed and rounded once, so c64
 * results are the correctly computed double results rounded to float.
 *
 * Conventions (numpy's): forward X[k] = sum_t x[t] exp(-2 pi i t k / n);
 * inverse uses exp(+2 pi i t k / n); both are unnormalized and every result is
 * multiplied by `scale` (pass 1/n for numpy's default "backward" inverse).
 * Functions return MX_OK or a status with a message ([fft] ...) from mx_error;
 * nothing aborts. */
#ifndef MX_FFT_H
#define MX_FFT_H

#include <stdint.h>

#include "../mx.h"

/* Largest transform length accepted (larger is MX_EINVAL). */
#define MX_FFT_MAX_N ((int64_t)1 << 40)

typedef struct mx_fft_plan mx_fft_plan;

/* A plan for length n (factorization, twiddles; for Bluestein the chirp and its
 * padded transform), from a small LRU cache keyed by n. Plans are read-only
 * and may be shared across threads; each get must be paired with a release. */
mx_status mx_fft_plan_get(int64_t n, mx_fft_plan **out);
void mx_fft_plan_release(mx_fft_plan *p);
int64_t mx_fft_plan_length(const mx_fft_plan *p);
/* 1 if the plan runs Bluestein's algorithm, 0 if mixed radix. */
int mx_fft_plan_is_bluestein(const mx_fft_plan *p);
/* Drops the cache's references (plans in use stay alive until released). */
void mx_fft_cache_clear(void);

/* howmany complex transforms of length n = plan length. Element k of transform
 * j is in[2*(j*dist + k*stride)] (re) and the next double (im); the output is
 * contiguous: out[2*(j*n + k)]. stride >= 1, dist >= 0. out may equal in when
 * stride == 1 and dist == n (in place); otherwise they must not overlap. */
mx_status mx_fft_c2c(const mx_fft_plan *p, const double *in, double *out, int64_t howmany, int64_t stride,
                     int64_t dist, int inverse, double scale);

/* Forward transform of real input (numpy rfft): element k of transform j is
 * in[j*dist + k*stride]; the n/2+1 complex outputs go to out[2*(j*(n/2+1) + k)]. */
mx_status mx_fft_r2c(const mx_fft_plan *p, const double *in, double *out, int64_t howmany, int64_t stride,
                     int64_t dist, double scale);

/* Inverse of r2c (numpy irfft, unnormalized times scale): n/2+1 complex inputs,
 * element k of transform j at in[2*(j*dist + k*stride)], to n real outputs at
 * out[j*n + k]. The imaginary parts of bin 0 and (n even) bin n/2 are ignored. */
mx_status mx_fft_c2r(const mx_fft_plan *p, const double *in, double *out, int64_t howmany, int64_t stride,
                     int64_t dist, double scale);

#endif
