/* kernels.h: the contract between graph.c and the CPU kernels in prim/.
 *
 * A kernel receives its output already shaped, typed and allocated
 * (out->buf, contiguous row-major) and its inputs READY and contiguous.
 * Kernels never infer shapes; they may fail (e.g. an index out of bounds
 * found only at run time) by returning mx_error(...). Parameters per op:
 *
 *   FULL          f[0] value
 *   IOTA          axis (-1: count over the flattened array)
 *   ARANGE        out[i] = f[0] + i * f[1], computed in double
 *   LINSPACE      f[0] start, f[1] stop, flags & 1: endpoint included
 *   AS_TYPE       in[0] any dtype; float->int saturates, NaN -> 0; ->bool is x != 0
 *   unary         in[0].dtype == out.dtype, except IS_NAN/IS_INFINITY/LOGICAL_NOT (out bool)
 *   binary        in[0].dtype == in[1].dtype; shapes broadcast (right-aligned) to out;
 *                 CMP/LOGIC ops write bool. Integer remainder/divide by 0 gives 0.
 *   SELECT        in[0] predicate (any dtype, truthy), in[1], in[2] of out.dtype; all broadcast
 *   reduce        ip[0..nip) sorted reduced axes; flags & MX_F_KEEP; in.dtype == out.dtype
 *                 except ARGMAX/ARGMIN (out s64, first index wins, NaN wins) and ALL/ANY (out bool)
 *   scan          axis; flags & MX_F_REVERSE; in.dtype == out.dtype
 *   RESHAPE       out shares in[0]'s buffer (graph.c); no kernel work
 *   TRANSPOSE     ip[0..ndim) permutation: out axis i is in axis ip[i]
 *   BROADCAST     in[0] right-aligned to out, each dim 1 or equal
 *   CONCATENATE   axis; n_in inputs of out.dtype, equal but for axis
 *   SLICE         ip[0..r) start, ip[r..2r) stride >= 1; out[i] = in[start + i * stride]
 *   PAD           in[1] scalar pad value; ip lo[r], hi[r], interior[r]; lo/hi may be < 0
 *   REVERSE       ip[0..nip) axes
 *   TAKE          in[1] s64 indices; axis; out = a.shape[:axis] ++ idx.shape ++ a.shape[axis+1:]
 *   TAKE_ALONG_AXIS in[1] s64 indices of the out shape; axis
 *   GATHER        in[1] s64 indices [..., k]; out = idx.shape[:-1] ++ a.shape[k:]
 *   INDEXED_ADD/PUT in[1] s64 indices [n, k], in[2] updates [n] ++ a.shape[k:] of out.dtype
 *   SORT/ARGSORT  axis; flags & MX_F_DESC; stable; NaN last ascending, first descending
 *   MATMUL        in[0] [..., m, k], in[1] [..., k, n] of out.dtype, batch dims broadcast
 *   complex       c64/c128 inputs reach only the ops ops_complex.c allows; abs/real/imag/angle
 *                 write the parts' float dtype; COMPLEX packs two f32 (f64) parts into c64 (c128)
 *   FFT/RFFT/IRFFT axis; f[0] scale; flags & 1 inverse (FFT); ip[0] the real length n;
 *                 the input already has the transform's length along axis (ops_fft.c crops/pads)
 *   rule INT      bitwise/shift/clz/popcount/quotient: integer inputs (bool for bitwise not/and/or/
 *                 xor) of out.dtype; semantics in elementwise.h (shift counts >= the width, x quotient 0)
 *   BITCAST       in[0]'s bytes as out.dtype, of the same width and size (ops_bitwise.c checks)
 *
 * Index kernels report out-of-bounds indices as MX_EINVAL naming the op. */
#ifndef MX_KERNELS_H
#define MX_KERNELS_H

#include "../mx.h"

#define MX_OP(id, name, family, rule, kernel, vjp, jvp, batch) mx_status kernel(mx_array *out, mx_array *const *in);
#include "../ops.def"
#undef MX_OP

/* Element strides of `a` seen through `out`'s shape with numpy broadcasting
 * (right-aligned; 0 where a has size 1 or lacks the axis). */
static inline void mx_broadcast_strides(const mx_array *a, const mx_array *out, int64_t *strides) {
  int64_t s = 1;
  for (int i = out->ndim - 1, j = a->ndim - 1; i >= 0; i--, j--) {
    if (j >= 0) {
      strides[i] = a->shape[j] == 1 ? 0 : s;
      s *= a->shape[j];
    } else {
      strides[i] = 0;
    }
  }
}

/* Contiguous element strides of a shape. */
static inline void mx_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
}

/* Work below this many elements stays on the calling thread. */
#define MX_PARALLEL_GRAIN 32768

/* Elementwise chunks sized by the node's weighted cost (elements x op weight, a unit
 * ~0.1 ns, see op_weight in ops.c): ~100 us of work per chunk, since waking a worker
 * costs a few us and memory-bound ops (add) gain from a second core only on large arrays. */
static inline int64_t mx_grain(const mx_array *out) {
  int64_t w = out->size > 0 ? out->cost / out->size : 1, g = ((int64_t)1 << 20) / (w > 0 ? w : 1);
  return g < 4096 ? 4096 : g;
}

/* ---- prepared elementwise kernels (tape replay, compile.c) ----
 * The elementwise drivers (unary, binary and select, betainc, as_type) can hand back their
 * loop with validation, dtype dispatch and broadcast setup done once: while mx_ew_capture is
 * set, a kernel call fills it (mx_ew_keep) instead of running. Replays then bind data and run
 * ranges of the same loops, so prepared and direct calls give the same bits. */
typedef struct {
  mx_range_fn range; /* computes out's flat range [lo, hi) */
  void (*bind)(void *ctx, char *dst, const char *const *src);
  void *ctx;         /* malloc'd plain data of ctx_size bytes: a copy is an independent plan */
  size_t ctx_size;
  int64_t grain;     /* the kernel's chunk size across cores */
} mx_ew;
extern _Thread_local mx_ew *mx_ew_capture;
/* The sum of n >= 1 contiguous f64 as mx_k_sum folds a whole array (reduce.c): the same bits. */
double mx_sum_f64(const double *x, int64_t n);
/* Copies the driver's ctx into mx_ew_capture; MX_ENOMEM if it can't. */
mx_status mx_ew_keep(const void *ctx, size_t size, mx_range_fn range, void (*bind)(void *, char *, const char *const *),
                     int64_t grain);

#endif
