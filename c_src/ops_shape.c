/* ops_shape.c: constructors for shape and indexing ops. squeeze, new_axis
 * and stack are composites of reshape and concatenate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx.h"
#include "ops_internal.h"

mx_status mx_reshape(mx_array *a, int ndim, const int64_t *shape, mx_array **out) {
  char b1[128], b2[128];
  int64_t s[MX_MAX_RANK], size;
  if (ndim < 0 || ndim > MX_MAX_RANK)
    return mx_error(MX_EINVAL, "[reshape] rank %d is not supported; ranks 0..%d are", ndim, MX_MAX_RANK);
  /* One -1 takes whatever size is left, as in numpy and Nx's :auto. */
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    s[i] = shape[i];
    if (shape[i] == -1 && infer < 0) {
      infer = i;
      continue;
    }
    if (shape[i] < 0) return mx_error(MX_EINVAL, "[reshape] dimension %d is %lld; dimensions must be >= 0 (or one -1)", i, (long long)shape[i]);
    if (__builtin_mul_overflow(known, shape[i], &known)) return mx_error(MX_EINVAL, "[reshape] shape is too large");
  }
  if (infer >= 0) {
    if (known == 0 || a->size % known != 0)
      return mx_error(MX_EINVAL, "[reshape] cannot infer dimension %d: %s has %lld elements, not a multiple of %lld", infer,
                      mx_describe(a, b1, sizeof b1), (long long)a->size, (long long)known);
    s[infer] = a->size / known;
  }
  mx_status st = mx_check_shape("reshape", ndim, s, &size);
  if (st) return st;
  if (size != a->size)
    return mx_error(MX_EINVAL, "[reshape] cannot reshape %s (%lld elements) to %s (%lld elements); sizes must match",
                    mx_describe(a, b1, sizeof b1), (long long)a->size, mx_describe_shape(ndim, s, b2, sizeof b2),
                    (long long)size);
  st = mx_node_new(MX_OP_RESHAPE, (mx_dtype)a->dtype, ndim, s, 1, &a, NULL, out);
  if (!st) (*out)->cost = 0;
  return st;
}

mx_status mx_transpose(mx_array *a, const int *perm, mx_array **out) {
  mx_params p = {.nip = a->ndim};
  int seen[MX_MAX_RANK] = {0};
  int64_t shape[MX_MAX_RANK];
  for (int i = 0; i < a->ndim; i++) {
    int ax = perm ? perm[i] : a->ndim - 1 - i;
    if (perm) {
      mx_status st = mx_normalize_axis("transpose", a, ax, a->ndim, &ax);
      if (st) return st;
    }
    if (seen[ax]) {
      char b1[128];
      return mx_error(MX_EINVAL, "[transpose] axis %d appears twice for %s; axes must be a permutation of 0..%d", ax,
                      mx_describe(a, b1, sizeof b1), a->ndim - 1);
    }
    seen[ax] = 1;
    p.ip[i] = ax;
    shape[i] = a->shape[ax];
  }
  return mx_node_new(MX_OP_TRANSPOSE, (mx_dtype)a->dtype, a->ndim, shape, 1, &a, &p, out);
}

mx_status mx_broadcast_to(mx_array *a, int ndim, const int64_t *shape, mx_array **out) {
  char b1[128], b2[128];
  int64_t size;
  mx_status st = mx_check_shape("broadcast", ndim, shape, &size);
  if (st) return st;
  int same = ndim == a->ndim;
  if (a->ndim > ndim) goto bad;
  for (int i = 0; i < a->ndim; i++) {
    int64_t s = a->shape[a->ndim - 1 - i], t = shape[ndim - 1 - i];
    if (s != t && s != 1) goto bad;
    if (s != t) same = 0;
  }
  if (same) {
    mx_retain(a);
    *out = a;
    return MX_OK;
  }
  return mx_node_new(MX_OP_BROADCAST, (mx_dtype)a->dtype, ndim, shape, 1, &a, NULL, out);
bad:
  return mx_error(MX_EINVAL,
                  "[broadcast] cannot broadcast %s to %s; trailing dimensions must match or be 1",
                  mx_describe(a, b1, sizeof b1), mx_describe_shape(ndim, shape, b2, sizeof b2));
}

mx_status mx_squeeze(mx_array *a, const int *axes, int naxes, mx_array **out) {
  int drop[MX_MAX_RANK] = {0};
  char b1[128];
  if (axes == NULL || naxes < 0) {
    for (int i = 0; i < a->ndim; i++) drop[i] = a->shape[i] == 1;
  } else {
    for (int i = 0; i < naxes; i++) {
      int ax = 0;
      mx_status st = mx_normalize_axis("squeeze", a, axes[i], a->ndim, &ax);
      if (st) return st;
      if (a->shape[ax] != 1)
        return mx_error(MX_EINVAL, "[squeeze] axis %d of %s has size %lld; only axes of size 1 can be squeezed", ax,
                        mx_describe(a, b1, sizeof b1), (long long)a->shape[ax]);
      drop[ax] = 1;
    }
  }
  int64_t shape[MX_MAX_RANK];
  int r = 0;
  for (int i = 0; i < a->ndim; i++)
    if (!drop[i]) shape[r++] = a->shape[i];
  return mx_reshape(a, r, shape, out);
}

mx_status mx_new_axis(mx_array *a, int axis, mx_array **out) {
  int ax = 0;
  if (a->ndim >= MX_MAX_RANK)
    return mx_error(MX_EINVAL, "[new_axis] rank %d arrays cannot gain an axis; ranks go up to %d", a->ndim, MX_MAX_RANK);
  mx_status st = mx_normalize_axis("new_axis", a, axis, a->ndim + 1, &ax);
  if (st) return st;
  int64_t shape[MX_MAX_RANK];
  for (int i = 0, j = 0; i <= a->ndim; i++) shape[i] = i == ax ? 1 : a->shape[j++];
  return mx_reshape(a, a->ndim + 1, shape, out);
}

mx_status mx_concatenate(mx_array *const *arrays, int n, int axis, mx_array **out) {
  char b1[128], b2[128];
  if (n < 1 || n > MX_MAX_INPUTS)
    return mx_error(MX_EINVAL, "[concatenate] needs between 1 and %d arrays, got %d", MX_MAX_INPUTS, n);
  mx_array *first = arrays[0];
  if (first->ndim == 0) return mx_error(MX_EINVAL, "[concatenate] cannot concatenate rank-0 arrays; use stack");
  int ax = 0;
  mx_status st = mx_normalize_axis("concatenate", first, axis, first->ndim, &ax);
  if (st) return st;
  int64_t shape[MX_MAX_RANK];
  memcpy(shape, first->shape, sizeof shape);
  mx_dtype t = (mx_dtype)first->dtype;
  for (int i = 1; i < n; i++) {
    mx_array *x = arrays[i];
    int ok = x->ndim == first->ndim;
    for (int d = 0; ok && d < x->ndim; d++) ok = d == ax || x->shape[d] == first->shape[d];
    if (!ok)
      return mx_error(MX_EINVAL, "[concatenate] array %d is %s but array 0 is %s; all shapes must match except axis %d", i,
                      mx_describe(x, b1, sizeof b1), mx_describe(first, b2, sizeof b2), ax);
    if (__builtin_add_overflow(shape[ax], x->shape[ax], &shape[ax]))
      return mx_error(MX_EINVAL, "[concatenate] joining %d arrays like %s along axis %d gives more elements than memory can hold", n,
                      mx_describe(first, b1, sizeof b1), ax);
    t = mx_promote(t, (mx_dtype)x->dtype);
  }
  mx_array *local[16], **cast = n <= 16 ? local : malloc(sizeof(mx_array *) * (size_t)n);
  if (!cast) return mx_error(MX_ENOMEM, "[concatenate] out of memory");
  int made = 0;
  for (; made < n && !st; made++) st = mx_cast(arrays[made], t, &cast[made]);
  if (st) made--;
  mx_params p = {.axis = ax};
  if (!st) st = mx_node_new(MX_OP_CONCATENATE, t, first->ndim, shape, n, cast, &p, out);
  for (int i = 0; i < made; i++) mx_release(cast[i]);
  if (cast != local) free(cast);
  return st;
}

mx_status mx_stack(mx_array *const *arrays, int n, int axis, mx_array **out) {
  if (n < 1 || n > MX_MAX_INPUTS) return mx_error(MX_EINVAL, "[stack] needs between 1 and %d arrays, got %d", MX_MAX_INPUTS, n);
  mx_array *local[16], **expanded = n <= 16 ? local : malloc(sizeof(mx_array *) * (size_t)n);
  if (!expanded) return mx_error(MX_ENOMEM, "[stack] out of memory");
  mx_status st = MX_OK;
  int made = 0;
  for (; made < n; made++) {
    if (arrays[made]->ndim != arrays[0]->ndim || memcmp(arrays[made]->shape, arrays[0]->shape, sizeof(int64_t) * (size_t)arrays[0]->ndim)) {
      char b1[128], b2[128];
      st = mx_error(MX_EINVAL, "[stack] array %d is %s but array 0 is %s; stacked arrays must have the same shape", made,
                    mx_describe(arrays[made], b1, sizeof b1), mx_describe(arrays[0], b2, sizeof b2));
      break;
    }
    st = mx_new_axis(arrays[made], axis, &expanded[made]);
    if (st) break;
  }
  if (!st) st = mx_concatenate(expanded, n, axis, out);
  for (int i = 0; i < made; i++) mx_release(expanded[i]);
  if (expanded != local) free(expanded);
  return st;
}

mx_status mx_slice(mx_array *a, const int64_t *start, const int64_t *stop, const int64_t *stride, mx_array **out) {
  char b1[128];
  mx_params p = {.nip = 2 * a->ndim};
  int64_t shape[MX_MAX_RANK];
  for (int i = 0; i < a->ndim; i++) {
    int64_t s = start[i], e = stop[i], k = stride ? stride[i] : 1;
    if (k < 1)
      return mx_error(MX_EINVAL, "[slice] stride %lld on axis %d must be >= 1; use reverse for backwards slices", (long long)k, i);
    if (s < 0 || e < s || e > a->shape[i])
      return mx_error(MX_EINVAL, "[slice] range %lld..%lld on axis %d is outside %s; need 0 <= start <= stop <= %lld",
                      (long long)s, (long long)e, i, mx_describe(a, b1, sizeof b1), (long long)a->shape[i]);
    shape[i] = e == s ? 0 : (e - s - 1) / k + 1; /* no stop - start + stride overflow */
    p.ip[i] = s;
    p.ip[a->ndim + i] = k;
  }
  return mx_node_new(MX_OP_SLICE, (mx_dtype)a->dtype, a->ndim, shape, 1, &a, &p, out);
}

static mx_status index_array(const char *op, mx_array *idx, mx_array **out) {
  char b1[128];
  if (!mx_is_int((mx_dtype)idx->dtype))
    return mx_error(MX_EINVAL, "[%s] indices must have an integer dtype, got %s; use as_type", op, mx_describe(idx, b1, sizeof b1));
  return mx_cast(idx, MX_S64, out);
}

mx_status mx_take(mx_array *a, mx_array *indices, int axis, mx_array **out) {
  int ax = 0;
  mx_status st = mx_normalize_axis("take", a, axis, a->ndim, &ax);
  if (st) return st;
  int r = a->ndim - 1 + indices->ndim;
  if (r > MX_MAX_RANK) return mx_error(MX_EINVAL, "[take] the result would have rank %d; ranks go up to %d", r, MX_MAX_RANK);
  int64_t shape[MX_MAX_RANK];
  int k = 0;
  for (int i = 0; i < ax; i++) shape[k++] = a->shape[i];
  for (int i = 0; i < indices->ndim; i++) shape[k++] = indices->shape[i];
  for (int i = ax + 1; i < a->ndim; i++) shape[k++] = a->shape[i];
  mx_array *idx;
  if ((st = index_array("take", indices, &idx))) return st;
  mx_array *in[2] = {a, idx};
  mx_params p = {.axis = ax};
  st = mx_node_new(MX_OP_TAKE, (mx_dtype)a->dtype, r, shape, 2, in, &p, out);
  mx_release(idx);
  return st;
}

mx_status mx_take_along_axis(mx_array *a, mx_array *indices, int axis, mx_array **out) {
  char b1[128], b2[128];
  int ax = 0;
  mx_status st = mx_normalize_axis("take_along_axis", a, axis, a->ndim, &ax);
  if (st) return st;
  int ok = indices->ndim == a->ndim;
  for (int i = 0; ok && i < a->ndim; i++) ok = i == ax || indices->shape[i] == a->shape[i];
  if (!ok)
    return mx_error(MX_EINVAL, "[take_along_axis] indices %s do not fit %s: same rank and sizes except axis %d required",
                    mx_describe(indices, b1, sizeof b1), mx_describe(a, b2, sizeof b2), ax);
  mx_array *idx;
  if ((st = index_array("take_along_axis", indices, &idx))) return st;
  mx_array *in[2] = {a, idx};
  mx_params p = {.axis = ax};
  st = mx_node_new(MX_OP_TAKE_ALONG_AXIS, (mx_dtype)a->dtype, indices->ndim, indices->shape, 2, in, &p, out);
  mx_release(idx);
  return st;
}

mx_status mx_gather(mx_array *a, mx_array *indices, mx_array **out) {
  char b1[128], b2[128];
  if (indices->ndim < 1 || indices->shape[indices->ndim - 1] > a->ndim)
    return mx_error(MX_EINVAL, "[gather] indices %s must have rank >= 1 and a last axis of size <= rank of %s",
                    mx_describe(indices, b1, sizeof b1), mx_describe(a, b2, sizeof b2));
  int k = (int)indices->shape[indices->ndim - 1];
  int r = indices->ndim - 1 + a->ndim - k;
  if (r > MX_MAX_RANK) return mx_error(MX_EINVAL, "[gather] the result would have rank %d; ranks go up to %d", r, MX_MAX_RANK);
  int64_t shape[MX_MAX_RANK];
  int n = 0;
  for (int i = 0; i < indices->ndim - 1; i++) shape[n++] = indices->shape[i];
  for (int i = k; i < a->ndim; i++) shape[n++] = a->shape[i];
  mx_array *idx;
  mx_status st = index_array("gather", indices, &idx);
  if (st) return st;
  mx_array *in[2] = {a, idx};
  st = mx_node_new(MX_OP_GATHER, (mx_dtype)a->dtype, r, shape, 2, in, NULL, out);
  mx_release(idx);
  return st;
}

static mx_status indexed(mx_op op, mx_array *a, mx_array *indices, mx_array *updates, mx_array **out) {
  const char *name = op == MX_OP_INDEXED_ADD ? "indexed_add" : "indexed_put";
  char b1[128], b2[128], b3[128];
  if (indices->ndim != 2 || indices->shape[1] > a->ndim)
    return mx_error(MX_EINVAL, "[%s] indices must be [n, k] with k <= rank of %s, got %s", name,
                    mx_describe(a, b1, sizeof b1), mx_describe(indices, b2, sizeof b2));
  int k = (int)indices->shape[1];
  int ok = updates->ndim == 1 + a->ndim - k && updates->shape[0] == indices->shape[0];
  for (int i = k; ok && i < a->ndim; i++) ok = updates->shape[1 + i - k] == a->shape[i];
  if (!ok)
    return mx_error(MX_EINVAL, "[%s] updates %s must have shape [n] ++ a.shape[k:] for a %s and indices %s", name,
                    mx_describe(updates, b1, sizeof b1), mx_describe(a, b2, sizeof b2), mx_describe(indices, b3, sizeof b3));
  mx_dtype storage = mx_promote((mx_dtype)a->dtype, (mx_dtype)updates->dtype);
  if (op == MX_OP_INDEXED_ADD && storage == MX_BOOL) storage = MX_U8;
  mx_dtype compute = op == MX_OP_INDEXED_ADD ? mx_compute_type(storage) : storage;
  mx_array *x = NULL, *idx = NULL, *u = NULL, *node = NULL;
  mx_status st = index_array(name, indices, &idx);
  if (!st) st = mx_cast(a, compute, &x);
  if (!st) st = mx_cast(updates, compute, &u);
  mx_array *in[3] = {x, idx, u};
  if (!st) st = mx_node_new(op, compute, a->ndim, a->shape, 3, in, NULL, &node);
  if (!st) st = mx_cast(node, storage, out);
  mx_release(x);
  mx_release(idx);
  mx_release(u);
  mx_release(node);
  return st;
}

mx_status mx_indexed_add(mx_array *a, mx_array *indices, mx_array *updates, mx_array **out) {
  return indexed(MX_OP_INDEXED_ADD, a, indices, updates, out);
}

mx_status mx_indexed_put(mx_array *a, mx_array *indices, mx_array *updates, mx_array **out) {
  return indexed(MX_OP_INDEXED_PUT, a, indices, updates, out);
}

mx_status mx_pad(mx_array *a, mx_array *value, const int64_t *lo, const int64_t *hi, const int64_t *interior,
                 mx_array **out) {
  char b1[128];
  if (value->ndim != 0)
    return mx_error(MX_EINVAL, "[pad] the pad value must be a scalar, got %s", mx_describe(value, b1, sizeof b1));
  mx_params p = {.nip = 3 * a->ndim};
  int64_t shape[MX_MAX_RANK];
  for (int i = 0; i < a->ndim; i++) {
    int64_t in = interior ? interior[i] : 0, n = a->shape[i];
    if (in < 0) return mx_error(MX_EINVAL, "[pad] interior padding on axis %d is %lld; it must be >= 0", i, (long long)in);
    int64_t grown = 0;
    int overflow = n > 0 && (__builtin_mul_overflow(n - 1, in, &grown) || __builtin_add_overflow(grown, n, &grown));
    overflow = overflow || __builtin_add_overflow(grown, lo[i], &shape[i]) || __builtin_add_overflow(shape[i], hi[i], &shape[i]);
    if (overflow)
      return mx_error(MX_EINVAL, "[pad] padding (%lld, %lld, %lld) on axis %d of %s gives more elements than memory can hold",
                      (long long)lo[i], (long long)hi[i], (long long)in, i, mx_describe(a, b1, sizeof b1));
    if (shape[i] < 0)
      return mx_error(MX_EINVAL, "[pad] padding (%lld, %lld) on axis %d of %s leaves a negative size", (long long)lo[i],
                      (long long)hi[i], i, mx_describe(a, b1, sizeof b1));
    p.ip[i] = lo[i];
    p.ip[a->ndim + i] = hi[i];
    p.ip[2 * a->ndim + i] = in;
  }
  mx_dtype t = (mx_dtype)a->dtype;
  if (mx_is_complex((mx_dtype)value->dtype) && !mx_is_complex(t)) {
    char b2[128];
    return mx_error(MX_EINVAL, "[pad] the pad value is complex (%s) but the array %s is real; pad with a real value "
                    "or convert the array to complex first", mx_describe(value, b1, sizeof b1), mx_describe(a, b2, sizeof b2));
  }
  mx_array *v;
  mx_status st = mx_cast(value, t, &v);
  if (st) return st;
  mx_array *in[2] = {a, v};
  st = mx_node_new(MX_OP_PAD, t, a->ndim, shape, 2, in, &p, out);
  mx_release(v);
  return st;
}

mx_status mx_reverse(mx_array *a, const int *axes, int naxes, mx_array **out) {
  mx_params p = {0};
  int seen[MX_MAX_RANK] = {0};
  if (axes == NULL || naxes < 0) {
    for (int i = 0; i < a->ndim; i++) p.ip[p.nip++] = i;
  } else {
    for (int i = 0; i < naxes; i++) {
      int ax = 0;
      mx_status st = mx_normalize_axis("reverse", a, axes[i], a->ndim, &ax);
      if (st) return st;
      if (!seen[ax]) p.ip[p.nip++] = ax;
      seen[ax] = 1;
    }
  }
  return mx_node_new(MX_OP_REVERSE, (mx_dtype)a->dtype, a->ndim, a->shape, 1, &a, &p, out);
}
