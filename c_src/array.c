/* array.c: array lifecycle (create, retain/release, dispose), dtypes and errors. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx.h"

/* ---- errors ---------------------------------------------------------------- */
static _Thread_local char last_error[1024];

mx_status mx_error(mx_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return code;
}

const char *mx_last_error(void) { return last_error; }

/* ---- dtypes ----------------------------------------------------------------- */
static const struct {
  const char *name;
  int bytes;
  char kind;
} dtypes[MX_DTYPE_COUNT] = {
#define X(id, name, ctype, bytes, kind) {name, bytes, kind},
    MX_DTYPES(X)
#undef X
};

int mx_dtype_size(mx_dtype t) { return dtypes[t].bytes; }
const char *mx_dtype_name(mx_dtype t) { return (unsigned)t < MX_DTYPE_COUNT ? dtypes[t].name : "?"; }
int mx_dtype_bits(mx_dtype t) { return t == MX_BOOL ? 1 : 8 * dtypes[t].bytes; }
int mx_is_float(mx_dtype t) { return dtypes[t].kind == 'f' || dtypes[t].kind == 'h'; }
int mx_is_int(mx_dtype t) { return dtypes[t].kind == 'u' || dtypes[t].kind == 's'; }
int mx_is_unsigned(mx_dtype t) { return dtypes[t].kind == 'u' || dtypes[t].kind == 'b'; }
int mx_is_complex(mx_dtype t) { return (unsigned)t < MX_DTYPE_COUNT && dtypes[t].kind == 'c'; }

int mx_dtype_from_name(const char *name) {
  for (int i = 0; i < MX_DTYPE_COUNT; i++)
    if (strcmp(dtypes[i].name, name) == 0) return i;
  return -1;
}

static mx_dtype int_type(char kind, int bits) {
  if (kind == 'u') return bits <= 8 ? MX_U8 : bits <= 16 ? MX_U16 : bits <= 32 ? MX_U32 : MX_U64;
  return bits <= 8 ? MX_S8 : bits <= 16 ? MX_S16 : bits <= 32 ? MX_S32 : MX_S64;
}

/* Nx's rules: floats beat ints (keeping the float's width); the wider float
 * wins (bf16 with f16 gives f32); signed with unsigned gives a signed type
 * wide enough for both (capped at s64); bool with anything gives the other. */
mx_dtype mx_promote(mx_dtype a, mx_dtype b) {
  if (a == b) return a;
  if (a == MX_BOOL) return b;
  if (b == MX_BOOL) return a;
  char ka = dtypes[a].kind, kb = dtypes[b].kind;
  /* Complex beats float and int; its parts are as wide as the wider float (c64 with f64 is c128). */
  if (ka == 'c' || kb == 'c') return a == MX_C128 || b == MX_C128 || a == MX_F64 || b == MX_F64 ? MX_C128 : MX_C64;
  int fa = ka == 'f' || ka == 'h', fb = kb == 'f' || kb == 'h';
  if (fa && fb) {
    if ((a == MX_F16 && b == MX_BF16) || (a == MX_BF16 && b == MX_F16)) return MX_F32;
    return dtypes[a].bytes >= dtypes[b].bytes ? a : b;
  }
  if (fa) return a;
  if (fb) return b;
  int ba = 8 * dtypes[a].bytes, bb = 8 * dtypes[b].bytes;
  if (ka == kb) return int_type(ka, ba > bb ? ba : bb);
  int su = ka == 's' ? ba : bb, uu = ka == 'u' ? ba : bb; /* signed, unsigned widths */
  return int_type('s', uu >= su ? 2 * uu : su);
}

/* ---- arrays ---------------------------------------------------------------- */
static _Atomic int64_t live_arrays;

int64_t mx_live_arrays(void) { return atomic_load(&live_arrays); }

mx_status mx_check_shape(const char *op, int ndim, const int64_t *shape, int64_t *size_out) {
  char buf[256];
  if (ndim < 0 || ndim > MX_MAX_RANK)
    return mx_error(MX_EINVAL, "[%s] rank %d is not supported; ranks 0..%d are", op, ndim, MX_MAX_RANK);
  int64_t size = 1;
  int zero = 0;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return mx_error(MX_EINVAL, "[%s] shape %s has a negative dimension; dimensions must be >= 0", op,
                      mx_describe_shape(ndim, shape, buf, sizeof buf));
    if (shape[i] == 0) zero = 1;
  }
  for (int i = 0; i < ndim && !zero; i++) {
    if (__builtin_mul_overflow(size, shape[i], &size) || size > ((int64_t)1 << 46))
      return mx_error(MX_EINVAL, "[%s] shape %s has more elements than memory can hold", op,
                      mx_describe_shape(ndim, shape, buf, sizeof buf));
  }
  *size_out = zero ? 0 : size;
  return MX_OK;
}

mx_status mx_node_new(mx_op op, mx_dtype dtype, int ndim, const int64_t *shape, int n_in, mx_array *const *in,
                      const mx_params *params, mx_array **out) {
  int64_t size;
  mx_status st = mx_check_shape(mx_ops[op].name, ndim, shape, &size);
  if (st) return st;
  for (int i = 0; i < n_in; i++)
    if (atomic_load(&in[i]->state) == MX_DISPOSED)
      return mx_error(MX_EDISPOSED, "[%s] input %d was disposed; it cannot be used again", mx_ops[op].name, i);
  mx_array *a = calloc(1, sizeof *a);
  if (!a) return mx_error(MX_ENOMEM, "[%s] out of memory creating a node", mx_ops[op].name);
  if (n_in > 0) {
    a->in = malloc(sizeof(mx_array *) * (size_t)n_in);
    if (!a->in) {
      free(a);
      return mx_error(MX_ENOMEM, "[%s] out of memory creating a node", mx_ops[op].name);
    }
  }
  if (params) {
    a->params = malloc(sizeof *params);
    if (!a->params) {
      free(a->in);
      free(a);
      return mx_error(MX_ENOMEM, "[%s] out of memory creating a node", mx_ops[op].name);
    }
    *a->params = *params;
  }
  atomic_init(&a->refs, 1);
  atomic_init(&a->state, MX_PENDING);
  a->op = (int16_t)op;
  a->dtype = (int8_t)dtype;
  a->ndim = (int8_t)ndim;
  if (ndim > 0) memcpy(a->shape, shape, sizeof(int64_t) * (size_t)ndim);
  a->size = size;
  a->n_in = n_in;
  a->cost = size * mx_op_weight(op);
  for (int i = 0; i < n_in; i++) {
    mx_retain(in[i]);
    a->in[i] = in[i];
    a->traced |= in[i]->traced;
  }
  if (op == MX_OP_STOP_GRADIENT) a->traced = 0;
  atomic_fetch_add(&live_arrays, 1);
  *out = a;
  return MX_OK;
}

mx_status mx_from_data(mx_dtype dtype, int ndim, const int64_t *shape, const void *data, size_t nbytes, mx_array **out) {
  mx_array *a = NULL;
  mx_status st = mx_node_new(MX_OP_CONSTANT, dtype, ndim, shape, 0, NULL, NULL, &a);
  if (st) return st;
  if (nbytes != mx_nbytes(a)) {
    char buf[256];
    st = mx_error(MX_EINVAL, "[from_binary] %zu bytes given, but %s %s needs %zu", nbytes, mx_dtype_name(dtype),
                  mx_describe_shape(ndim, shape, buf, sizeof buf), mx_nbytes(a));
    mx_release(a);
    return st;
  }
  st = mx_buffer_alloc(nbytes, &a->buf);
  if (st) {
    char why[1024];
    snprintf(why, sizeof why, "%s", mx_last_error());
    mx_release(a);
    return mx_error(st, "[from_binary] %.900s", why);
  }
  if (nbytes) memcpy(a->buf->data, data, nbytes);
  atomic_store(&a->state, MX_READY);
  *out = a;
  return MX_OK;
}

mx_status mx_from_buffer(mx_dtype dtype, int ndim, const int64_t *shape, mx_buffer *buf, mx_array **out) {
  mx_array *a = NULL;
  mx_status st = mx_node_new(MX_OP_CONSTANT, dtype, ndim, shape, 0, NULL, NULL, &a);
  if (st) return st;
  if (buf->nbytes < mx_nbytes(a)) {
    mx_release(a);
    return mx_error(MX_EINVAL, "[constant] a buffer of %zu bytes cannot hold %zu", buf->nbytes, mx_nbytes(a));
  }
  mx_buffer_retain(buf);
  a->buf = buf;
  a->cost = 0;
  atomic_store(&a->state, MX_READY);
  *out = a;
  return MX_OK;
}

void mx_retain(mx_array *a) { atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed); }

/* A list of nodes to free: on the C stack while small, on the heap beyond. */
typedef struct {
  mx_array *local[32], **v;
  size_t n, cap;
} node_list;

static void list_init(node_list *l) {
  l->v = l->local;
  l->n = 0;
  l->cap = 32;
}

static void list_push(node_list *l, mx_array *x) {
  if (l->n == l->cap) {
    mx_array **bigger = l->v == l->local ? malloc(2 * l->cap * sizeof *bigger) : realloc(l->v, 2 * l->cap * sizeof *bigger);
    if (bigger && l->v == l->local) memcpy(bigger, l->local, sizeof l->local);
    if (bigger) {
      l->v = bigger;
      l->cap *= 2;
    }
  }
  if (l->n < l->cap) l->v[l->n++] = x; /* out of memory: the node leaks rather than crash */
}

static void list_free(node_list *l) {
  if (l->v != l->local) free(l->v);
}

/* Frees the nodes in *work (each at refcount 0) and every input that drops to
 * zero, iteratively so a 10^6-node chain cannot overflow the C stack. With
 * `rest`, frees at most `budget` nodes and moves what is left to *rest. */
static void free_nodes(node_list *work, int64_t budget, node_list *rest) {
  while (work->n > 0) {
    mx_array *x = work->v[--work->n];
    if (rest && budget-- <= 0) {
      list_push(rest, x);
      continue;
    }
    for (int i = 0; i < x->n_in; i++) {
      mx_array *p = x->in[i];
      if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) list_push(work, p);
    }
    free(x->in);
    free(x->params);
    mx_buffer_release(x->buf);
    free(x);
    atomic_fetch_sub(&live_arrays, 1);
  }
}

void mx_release(mx_array *a) {
  if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1) return;
  node_list work;
  list_init(&work);
  list_push(&work, a);
  free_nodes(&work, 0, NULL);
  list_free(&work);
}

typedef struct {
  mx_array **v;
  size_t n;
} reap_job;

/* Graphs being freed on engine threads: memory reports wait for them (mx_reap_wait). */
static pthread_mutex_t reap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reap_idle = PTHREAD_COND_INITIALIZER;
static int64_t reaping;

static void reaping_add(int64_t d) {
  pthread_mutex_lock(&reap_lock);
  reaping += d;
  if (reaping == 0) pthread_cond_broadcast(&reap_idle);
  pthread_mutex_unlock(&reap_lock);
}

int64_t mx_reap_pending(void) {
  pthread_mutex_lock(&reap_lock);
  int64_t n = reaping;
  pthread_mutex_unlock(&reap_lock);
  return n;
}

void mx_reap_wait(void) {
  pthread_mutex_lock(&reap_lock);
  while (reaping > 0) pthread_cond_wait(&reap_idle, &reap_lock);
  pthread_mutex_unlock(&reap_lock);
}

static mx_status reap(void *ctx) {
  reap_job *j = ctx;
  node_list work;
  list_init(&work);
  for (size_t i = 0; i < j->n; i++) list_push(&work, j->v[i]);
  free_nodes(&work, 0, NULL);
  list_free(&work);
  j->n = 0;
  reaping_add(-1);
  return MX_OK;
}

static void reap_free(void *ctx) {
  reap_job *j = ctx;
  free(j->v);
  free(j);
}

void mx_release_bounded(mx_array *a, int64_t budget) {
  if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1) return;
  node_list work, rest;
  list_init(&work);
  list_init(&rest);
  list_push(&work, a);
  free_nodes(&work, budget, &rest);
  list_free(&work);
  if (rest.n == 0) return;
  reap_job *j = malloc(sizeof *j);
  mx_array **v = j ? malloc(rest.n * sizeof *v) : NULL;
  mx_task *t;
  if (v) {
    memcpy(v, rest.v, rest.n * sizeof *v);
    j->v = v;
    j->n = rest.n;
    reaping_add(1);
    if (mx_task_start(reap, j, reap_free, &t) == MX_OK) {
      mx_task_detach(t); /* nobody waits: the engine thread frees and lets go */
      list_free(&rest);
      return;
    }
    reaping_add(-1);
  } else {
    free(j);
  }
  free_nodes(&rest, 0, NULL); /* no thread or no memory: free here after all */
  list_free(&rest);
}

void mx_dispose(mx_array *a) {
  mx_graph_detach(a, 1);
}

int mx_is_ready(const mx_array *a) { return atomic_load(&a->state) == MX_READY; }

char *mx_describe_shape(int ndim, const int64_t *shape, char *dst, size_t cap) {
  size_t k = 0;
  dst[0] = 0;
  if (ndim == 0) snprintf(dst, cap, "{}");
  for (int i = 0; i < ndim && k < cap; i++) k += (size_t)snprintf(dst + k, cap - k, "[%lld]", (long long)shape[i]);
  return dst;
}

char *mx_describe(const mx_array *a, char *dst, size_t cap) {
  int k = snprintf(dst, cap, "%s", mx_dtype_name((mx_dtype)a->dtype));
  if (k < 0 || (size_t)k >= cap) return dst;
  if (a->ndim == 0)
    snprintf(dst + k, cap - (size_t)k, "[]");
  else
    mx_describe_shape(a->ndim, a->shape, dst + k, cap - (size_t)k);
  return dst;
}
