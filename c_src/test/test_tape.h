/* test_tape.h: graph builders shared by the tape tests (test_compile.c, test_jit.c):
 * placeholders and ops that end the program on failure (a test cannot go on without its
 * graph), and random elementwise DAGs (recipes) built the same way on placeholders and
 * on values. Header-only, like test_util.h. */
#ifndef MX_TEST_TAPE_H
#define MX_TEST_TAPE_H

#include "test_util.h"

/* With track_made set, every array the builders return is kept here and released by
 * release_made() (test_jit.c); otherwise the caller releases what it built. */
static int track_made;
static mx_array **made;
static int n_made, cap_made;

static inline mx_array *must(mx_status st, mx_array *x, const char *what) {
  if (st) {
    printf("%s: %s\n", what, mx_last_error());
    exit(2);
  }
  if (x && track_made) {
    if (n_made == cap_made) {
      cap_made = cap_made ? 2 * cap_made : 256;
      made = realloc(made, sizeof *made * (size_t)cap_made);
      if (!made) {
        printf("out of memory tracking arrays\n");
        exit(2);
      }
    }
    made[n_made++] = x;
  }
  return x;
}

/* must for a call that returns its array through *out (read after the call: argument order is
 * unspecified in C). */
static inline mx_array *must_call(mx_status st, mx_array **out, const char *what) { return must(st, *out, what); }

static inline void release_made(void) {
  while (n_made > 0) mx_release(made[--n_made]);
}

static inline mx_array *ph(mx_dtype t, int nd, const int64_t *shape) {
  mx_array *p = NULL;
  mx_status st = mx_placeholder(t, nd, shape, &p);
  return must(st, p, "placeholder");
}

static inline mx_array *bin(mx_op op, mx_array *a, mx_array *b) {
  mx_array *o = NULL;
  mx_status st = mx_binary(op, a, b, &o);
  return must(st, o, mx_ops[op].name);
}

static inline mx_array *un(mx_op op, mx_array *a) {
  mx_array *o = NULL;
  mx_status st = mx_unary(op, a, &o);
  return must(st, o, mx_ops[op].name);
}

/* A reduction over naxes axes (-1: all), not keeping them. */
static inline mx_array *red(mx_op op, mx_array *a, int naxes, const int *axes) {
  mx_array *o = NULL;
  mx_status st = mx_reduce(op, a, axes, naxes, 0, &o);
  return must(st, o, mx_ops[op].name);
}

/* An f64 scalar. */
static inline mx_array *scalar(double v) {
  mx_array *o = NULL;
  mx_status st = mx_full(MX_F64, 0, NULL, v, &o);
  return must(st, o, "full");
}

/* ---- random DAGs ---------------------------------------------------------------------
 * An elementwise DAG over leaves of shapes [R, C], [1, C], [R, 1] and [], with reductions
 * (kept axis), reshapes there and back, selects, broadcasts, no-ops and reuse of any earlier
 * value: in-place reuse, scratch blocks and split loops must never clobber a value still to
 * be read, and broadcast reads must index right. */
enum { N_LEAF = 4, N_NODE = 40, N_RECIPE_OPS = 13, RECIPE_SUM = 9 };
typedef struct {
  int op[N_NODE], a[N_NODE], b[N_NODE], c[N_NODE];
  int out[3];
} recipe;

/* with_sum 0: no reductions (then every value is the same expression per element on both
 * tiers, so they agree bit for bit). */
static inline recipe make_recipe(uint64_t seed, int with_sum) {
  recipe r;
  uint64_t st = seed;
  for (int i = N_LEAF; i < N_NODE; i++) {
    r.op[i] = (int)(xorshift64(&st) % N_RECIPE_OPS);
    if (!with_sum && r.op[i] == RECIPE_SUM) r.op[i] = 3;
    r.a[i] = (int)(xorshift64(&st) % (uint64_t)i);
    r.b[i] = (int)(xorshift64(&st) % (uint64_t)i);
    r.c[i] = (int)(xorshift64(&st) % (uint64_t)i);
    if (xorshift64(&st) % 2) r.a[i] = i - 1; /* mostly chains, as real tapes */
  }
  r.out[0] = N_NODE - 1;
  r.out[1] = N_LEAF + (int)(xorshift64(&st) % (N_NODE - N_LEAF));
  r.out[2] = N_LEAF + (int)(xorshift64(&st) % (N_NODE - N_LEAF));
  return r;
}

/* Builds the recipe on v[0 .. N_LEAF) (f64); fills v[N_LEAF ..) (new references; with
 * track_made also kept for release_made, as are the intermediates it drops). */
static inline void build_recipe(const recipe *r, mx_array **v) {
  for (int i = N_LEAF; i < N_NODE; i++) {
    mx_array *a = v[r->a[i]], *b = v[r->b[i]], *c = v[r->c[i]], *o = NULL, *tmp = NULL;
    switch (r->op[i]) {
      case 0: o = un(MX_OP_SIN, a); break;
      case 1: o = un(MX_OP_NEGATE, a); break;
      case 2: o = un(MX_OP_TANH, a); break;
      case 3: o = bin(MX_OP_ADD, a, b); break;
      case 4: o = bin(MX_OP_MULTIPLY, a, b); break;
      case 5: o = bin(MX_OP_SUBTRACT, a, b); break;
      case 6: o = bin(MX_OP_MAX, a, b); break;
      case 7: o = un(MX_OP_SQUARE, a); break;
      case 8: { /* select(a > b, b, c) */
        tmp = bin(MX_OP_GREATER, a, b);
        must_call(mx_select(tmp, b, c, &o), &o, "select");
        break;
      }
      case RECIPE_SUM: { /* sum over the last axis, kept */
        int ax[1] = {a->ndim - 1};
        must_call(mx_reduce(MX_OP_SUM, a, a->ndim ? ax : NULL, a->ndim ? 1 : -1, 1, &o), &o, "sum");
        break;
      }
      case 10: { /* flatten and back: two aliases */
        int64_t flat[1] = {a->size};
        must_call(mx_reshape(a, 1, flat, &tmp), &tmp, "reshape");
        must_call(mx_reshape(tmp, a->ndim, a->shape, &o), &o, "reshape back");
        break;
      }
      case 11: { /* broadcast to the leaves' full shape, read by a binary op (which reads the source) */
        must_call(mx_broadcast_to(a, v[0]->ndim, v[0]->shape, &tmp), &tmp, "broadcast");
        o = bin(MX_OP_SUBTRACT, tmp, b);
        break;
      }
      default: { /* multiply by a constant 1 and add -0.0: no-ops */
        mx_array *one = scalar(1), *nz = scalar(-0.0);
        tmp = bin(MX_OP_MULTIPLY, a, one);
        o = bin(MX_OP_ADD, tmp, nz);
        if (!track_made) mx_release(one), mx_release(nz);
      }
    }
    if (tmp && !track_made) mx_release(tmp);
    v[i] = o;
  }
}

/* Leaf i's shape ([R, C], [1, C], [R, 1], []) into shape; its rank. */
static inline int recipe_leaf_shape(int i, int64_t R, int64_t C, int64_t *shape) {
  shape[0] = i == 1 ? 1 : R;
  shape[1] = i == 2 ? 1 : C;
  return i == 3 ? 0 : 2;
}

/* Leaf i as values in [-2, 2] drawn from the xorshift state. */
static inline mx_array *recipe_leaf_values(int i, int64_t R, int64_t C, uint64_t *st) {
  int64_t shape[2];
  int nd = recipe_leaf_shape(i, R, C, shape);
  int64_t n = numel(nd, shape);
  double *d = malloc(sizeof(double) * (size_t)n);
  if (!d) {
    printf("out of memory\n");
    exit(2);
  }
  for (int64_t j = 0; j < n; j++) d[j] = (double)(xorshift64(st) % 2001) / 500.0 - 2.0;
  mx_array *x = arr_values(MX_F64, nd, shape, d);
  free(d);
  return x;
}

#endif
