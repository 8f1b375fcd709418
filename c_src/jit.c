/* jit.c: the generated-C tier of tapes. mx_jit_source writes a tape as one C
 * function with static shapes: elementwise instructions of one shape fuse into
 * one loop nest (with a trailing full reduction), intermediates that die inside
 * it are loop locals, small arrays are stack locals, small constants literals;
 * instructions with no rule here call back into their kernel (native_call in
 * compile.c). A group that the pool would split becomes a chunk function that
 * mxjit_run hands to mx_parallel_for, writing outputs in place (split groups,
 * below); its full reductions fold fixed parts into partials, folded in order
 * after the pool (the bits depend on the tape, not on the threads). Outputs
 * that a group computes are written in place in any group. The per-element expressions are prim/elementwise.h's X-macros,
 * stringified, and that header's text heads every source, so both tiers compute
 * with the same C.
 *
 * mx_tape_jit_start compiles it on an engine thread with the system compiler
 * and swaps the function into the tape when loaded. Objects are cached per user
 * in $XDG_CACHE_HOME/genmx (or ~/.cache/genmx): the directory must be ours and
 * not group/world writable (else a private temporary directory is used and
 * nothing is kept), a file is named by the SHA-256 of (source, compiler path and
 * version, flags) and loaded only when it is ours, not group/world writable and
 * its bytes hash to the sidecar written with it; it is loaded through the
 * verified descriptor, and must export that key. Anything else is rebuilt. */
#define _GNU_SOURCE /* pipe2 */
#include <dlfcn.h>
#include <signal.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mx.h"
#include "prim/elementwise.h"
#include "prim/kernels.h"
#include "prim/special.h"

extern char **environ;

#ifndef MX_JIT_CC
#define MX_JIT_CC "cc"
#endif
/* The NIF's optimisation flags (the Makefile's OPT: -O3, the x86-64-v2 baseline, no errno from libm),
 * not its warnings or visibility; and -fno-trapping-math (nothing here enables FP traps; values are
 * unchanged) so gcc can if-convert compares such as min/max's NaN test and vectorize the loops. */
#if defined(__x86_64__)
#define MX_JIT_ARCH "-march=x86-64-v2"
#else
#define MX_JIT_ARCH "-O3"
#endif
static const char *const jit_flags[] = {"-O3", MX_JIT_ARCH, "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared", "-std=gnu11", "-w"};
#define N_FLAGS (sizeof jit_flags / sizeof *jit_flags)

/* The text of prim/elementwise.h as a string (the Makefile generates it). */
static const char elementwise_h[] =
#include "elementwise_h.inc"
    ;

/* ---- the host table: special functions generated code reaches by pointer ------------- */

/* X(return type, name, parameter types) */
#define MX_JIT_SPECIALS(X)                                                                                      \
  X(double, mx_erf_inv, (double)) X(float, mx_erf_invf, (float)) X(double, mx_digamma, (double))             \
  X(float, mx_digammaf, (float)) X(double, mx_lgamma, (double)) X(float, mx_lgammaf, (float))                 \
  X(double, mx_trigamma, (double)) X(float, mx_trigammaf, (float)) X(double, mx_erfc, (double))               \
  X(float, mx_erfcf, (float)) X(double, mx_log_ndtr, (double)) X(float, mx_log_ndtrf, (float))                \
  X(double, mx_ndtri, (double)) X(float, mx_ndtrif, (float)) X(double, mx_igamma, (double, double))           \
  X(float, mx_igammaf, (float, float)) X(double, mx_igammac, (double, double))                                \
  X(float, mx_igammacf, (float, float)) X(double, mx_ibeta, (double, double, double))                         \
  X(float, mx_ibetaf, (float, float, float)) X(int, mx_cancelled, (void))                                     \
  X(void, mx_parallel_for, (int64_t, int64_t, void (*)(void *, int64_t, int64_t), void *)) /* split groups: the pool */

#define HOST_FIELD(R, name, params) R(*name) params;
struct mx_jit_host {
  MX_JIT_SPECIALS(HOST_FIELD)
};
#define HOST_INIT(R, name, params) .name = name,
static const mx_jit_host host_table = {MX_JIT_SPECIALS(HOST_INIT)};
const mx_jit_host *mx_jit_host_table(void) { return &host_table; }

/* ---- a growing string ----------------------------------------------------------------- */

typedef struct {
  char *s;
  size_t n, cap;
  int oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void put(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
      b->oom = 1;
      return;
    }
    if (b->s && b->n + (size_t)k < b->cap) {
      b->n += (size_t)k;
      return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap <= b->n + (size_t)k) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->oom = 1;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
}

/* ---- expressions from elementwise.h --------------------------------------------------- */

typedef struct {
  mx_op op;
  const char *iexpr, *fexpr; /* integer and float forms (equal when one form exists) */
  int kind;                  /* E_SAME, E_BOOL, E_FUNARY, E_ARITH, E_FBIN, E_CMP */
} expr_row;
enum { E_SAME = 1, E_BOOL, E_FUNARY, E_ARITH, E_FBIN, E_CMP, E_INT /* integer inputs only (rule INT) */ };

#define OPID_negate NEGATE
#define OPID_abs ABS
#define OPID_sign SIGN
#define OPID_square SQUARE
#define OPID_floor FLOOR
#define OPID_ceil CEIL
#define OPID_round ROUND
#define OPID_is_nan IS_NAN
#define OPID_is_infinity IS_INFINITY
#define OPID_logical_not LOGICAL_NOT
#define OPID_bitwise_not BITWISE_NOT
#define OPID_count_leading_zeros COUNT_LEADING_ZEROS
#define OPID_population_count POPULATION_COUNT
#define OPCAT(a, b) a##b
#define OPOF(id) OPCAT(MX_OP_, id)
#define SAME_ROW(name, ID, T, iexpr, fexpr) {OPOF(OPID_##name), #iexpr, #fexpr, E_SAME},
#define BOOL_ROW(name, ID, T, iexpr, fexpr) {OPOF(OPID_##name), #iexpr, #fexpr, E_BOOL},
#define FUNARY_ROW(name, f32, f64) {MX_OP_COUNT, #f32, #f64, E_FUNARY}, /* op filled by name */
#define ARITH_ROW(OP, name, iexpr, fexpr) {MX_OP_##OP, #iexpr, #fexpr, E_ARITH},
#define FBIN_ROW(OP, name, fexpr) {MX_OP_##OP, #fexpr, #fexpr, E_FBIN},
#define CMP_ROW(OP, name, expr) {MX_OP_##OP, #expr, #expr, E_CMP},
#define IUN_ROW(name, ID, T, expr) {OPOF(OPID_##name), #expr, #expr, E_INT},
#define IBIN_ROW(OP, name, expr) {MX_OP_##OP, #expr, #expr, E_INT},
#define FUNARY_NAME(name, f32, f64) #name,

static const char *const funary_names[] = {FLOAT_UNARY_OPS(FUNARY_NAME)};
static expr_row rows[] = {SAME_OPS(SAME_ROW, _, T) BOOL_OPS(BOOL_ROW, _, T) FLOAT_UNARY_OPS(FUNARY_ROW)
                              ARITH_OPS(ARITH_ROW) FLOAT_OPS(FBIN_ROW) CMP_OPS(CMP_ROW)
                              INT_UNARY_OPS(IUN_ROW, _, T) INT_BINARY_OPS(IBIN_ROW)};
#define N_ROWS (sizeof rows / sizeof *rows)
#define STR2(x) #x
#define STR(x) STR2(x)
static const char select_expr[] = STR(SELECT_EXPR(p, a, b));
static const char div_invariant[] = STR2(DIV_BY_INVARIANT(a, b, r));
static const char acc_type[] = STR2(ACC(T));
#define STEP_TEXT(name) STR2(name(r, x))

static const expr_row *find_row(mx_op op) {
  static _Atomic int ready;
  if (!atomic_load(&ready)) { /* FLOAT_UNARY_OPS rows by name (idempotent: threads may race here) */
    size_t f = 0;
    for (size_t i = 0; i < N_ROWS; i++)
      if (rows[i].kind == E_FUNARY) {
        const char *name = funary_names[f++];
        for (int o = 0; o < MX_OP_COUNT; o++)
          if (!strcmp(mx_ops[o].name, name)) rows[i].op = (mx_op)o;
      }
    atomic_store(&ready, 1);
  }
  for (size_t i = 0; i < N_ROWS; i++)
    if (rows[i].op == op) return &rows[i];
  return NULL;
}

/* ---- types ---------------------------------------------------------------------------- */

#define CTYPE_NAME(ID, name, T, bytes, kind) [MX_##ID] = #T,
static const char *const ctype[MX_DTYPE_COUNT] = {MX_DTYPES(CTYPE_NAME)};

/* Dtypes generated code computes on: bool, integers, f32, f64 (not f16/bf16 storage, not complex). */
static int real_type(mx_dtype t) { return t != MX_F16 && t != MX_BF16 && !mx_is_complex(t) && t < MX_DTYPE_COUNT; }
static int is_flt(mx_dtype t) { return t == MX_F32 || t == MX_F64; }

/* ---- classification -------------------------------------------------------------------- */

enum { R_CALL, R_EW, R_RED, R_ALIAS, R_MATMUL, R_SLICE, R_PAD };

typedef struct {
  const mx_tape_view *v;
  int *rule;     /* per instruction */
  int *group;    /* per instruction: group id (its first member), -1 standalone */
  int *order;    /* emission order: dependencies first, a group's members together */
  int *prod;     /* per slot: producing instruction, -1 */
  int *outside;  /* per slot: read outside its group (or an output) */
  int *storage;  /* per slot: S_* */
  int64_t *soff; /* per slot: scratch offset */
  uint8_t *done; /* per instruction: ordered (classify) */
  uint8_t *par;  /* per instruction: a group's first member whose group splits across the pool */
  int *mark;     /* per slot: the chunk_args call that last listed it */
  int *args;     /* chunk_args' list (n_slots) */
  int64_t *cost, *grain; /* per instruction: a group's summed weighted cost and chunk size (its first) */
  int64_t *parts;        /* per instruction: a split group's partials per reduction (its first) */
  int stamp;
  size_t scratch;
} gen;
/* S_OUT: written straight into the call's output O[soff] (members of split groups). */
enum { S_PTR, S_LOCAL, S_SCRATCH, S_TEMP, S_CONST, S_OUT };

#define LOCAL_BYTES 16384  /* stack locals in all (the generated function may run on a scheduler thread) */
#define CONST_LITERAL 64   /* constants up to this many elements become literals */
#define MATMUL_INLINE 4096 /* m * n * k multiply-adds done as plain loops */
#define CANCEL_CHECK 65536 /* loops this long check for cancellation after them */
#define MAX_PARTS 64        /* partials of a split group's reduction (stack arrays in mxjit_run) */
#define MAX_INSTRUCTIONS 4096 /* larger tapes stay on the interpreter: compile time, and the stack their
                                 * loop locals may take on a scheduler thread (8 bytes each) */

static const mx_array *slot(const gen *g, int s) { return &g->v->slots[s]; }
static int in_slot(const gen *g, int k, int j) { return g->v->in_idx[g->v->in_off[k] + j]; }
static int n_inputs(const gen *g, int k) { return g->v->in_off[k + 1] - g->v->in_off[k]; }

static int same_shape_of(const mx_array *a, const mx_array *b) {
  return a->ndim == b->ndim && (a->ndim == 0 || !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim));
}

static int full_reduce(const mx_array *x) { return x->size == 1 && (x->params && x->params->nip > 0); }

/* Reductions of this many elements call the kernel, which folds chunk partials across the pool
 * (prim/reduce.c, the interpreter's bits); a loop here would be serial. */
#define REDUCE_CALL_MIN 131072

static int rule_of(const gen *g, int k) {
  const mx_array *x = slot(g, g->v->ins_slot[k]);
  mx_dtype ot = (mx_dtype)x->dtype;
  if (x->op == MX_OP_RESHAPE || x->op == MX_OP_STOP_GRADIENT) return R_ALIAS; /* any dtype: shares its input */
  if (x->size == 0 || !real_type(ot)) return R_CALL;
  int n = n_inputs(g, k);
  for (int j = 0; j < n; j++)
    if (!real_type((mx_dtype)slot(g, in_slot(g, k, j))->dtype) || slot(g, in_slot(g, k, j))->size == 0) return R_CALL;
  mx_dtype it = n ? (mx_dtype)slot(g, in_slot(g, k, 0))->dtype : ot;
  mx_op op = (mx_op)x->op;
  switch (op) {
    case MX_OP_BROADCAST: return R_EW;
    case MX_OP_SELECT: return R_EW;
    case MX_OP_AS_TYPE: return is_flt(it) && !is_flt(ot) && ot != MX_BOOL ? R_CALL : R_EW; /* saturation: kernel */
    case MX_OP_SUM:
    case MX_OP_PRODUCT:
    case MX_OP_REDUCE_MAX:
    case MX_OP_REDUCE_MIN: return it == MX_BOOL || slot(g, in_slot(g, k, 0))->size >= REDUCE_CALL_MIN ? R_CALL : R_RED;
    case MX_OP_SLICE: return x->params && x->params->nip >= 2 * x->ndim && slot(g, in_slot(g, k, 0))->ndim == x->ndim ? R_SLICE : R_CALL;
    case MX_OP_PAD: return x->params && x->params->nip >= 3 * x->ndim && slot(g, in_slot(g, k, 0))->ndim == x->ndim ? R_PAD : R_CALL;
    case MX_OP_MATMUL: {
      const mx_array *a = slot(g, in_slot(g, k, 0)), *b = slot(g, in_slot(g, k, 1));
      /* a flagged (stored-transposed) operand goes to the kernel */
      return is_flt(ot) && !x->params && a->ndim == 2 && b->ndim == 2 && a->size * b->shape[1] <= MATMUL_INLINE ? R_MATMUL : R_CALL;
    }
    default: break;
  }
  const expr_row *r = find_row(op);
  if (!r) return R_CALL;
  if ((r->kind == E_FUNARY || r->kind == E_FBIN) && !is_flt(it)) return R_CALL;
  if (r->kind == E_SAME && it == MX_BOOL) return R_CALL;
  if (r->kind == E_INT && (is_flt(it) || it == MX_BOOL)) return R_CALL; /* bool not: the kernel's logical loop */
  return R_EW;
}

/* The shape a group loops over: an elementwise instruction's output, a reduction's input. */
static const mx_array *loop_shape(const gen *g, int k) {
  return g->rule[k] == R_RED ? slot(g, in_slot(g, k, 0)) : slot(g, g->v->ins_slot[k]);
}

/* Whether instruction k can join group cur (first member `first`). */
static int joins(const gen *g, int k, int cur, int first) {
  int r = g->rule[k];
  if (cur < 0 || !(r == R_EW || (r == R_RED && full_reduce(slot(g, g->v->ins_slot[k]))))) return 0;
  if (!same_shape_of(loop_shape(g, k), loop_shape(g, first))) return 0;
  for (int j = 0; j < n_inputs(g, k); j++) {
    int p = g->prod[in_slot(g, k, j)];
    if (p >= 0 && g->group[p] == cur && g->rule[p] == R_RED) return 0;
  }
  return 1;
}

/* The first output that is slot s, or -1. */
static int output_of(const gen *g, int s) {
  for (int o = 0; o < g->v->n_out; o++)
    if (g->v->out_slot[o] == s) return o;
  return -1;
}

static void classify(gen *g) {
  const mx_tape_view *v = g->v;
  for (int s = 0; s < v->n_slots; s++) g->prod[s] = -1;
  for (int k = 0; k < v->n_ins; k++) {
    g->rule[k] = rule_of(g, k);
    g->prod[v->ins_slot[k]] = k;
  }
  /* Groups: elementwise instructions of one shape, plus full reductions of that shape, run
   * together in one loop; a member may not read a reduction of its own group (not yet
   * complete). The order keeps dependencies and, among ready instructions, takes one that
   * joins the open group, else the one with the fewest elements (scalar work first: it is
   * what the next array loop usually waits for), so groups grow past unrelated work. */
  int cur = -1, first = -1;
  uint8_t *done = g->done;
  for (int pos = 0; pos < v->n_ins; pos++) {
    int k = -1, other = -1;
    for (int c = 0; c < v->n_ins && k < 0; c++) {
      if (done[c]) continue;
      int ready = 1;
      for (int j = 0; ready && j < n_inputs(g, c); j++) {
        int p = g->prod[in_slot(g, c, j)];
        ready = p < 0 || done[p];
      }
      if (!ready) continue;
      if (joins(g, c, cur, first)) k = c;
      else if (other < 0 || loop_shape(g, c)->size < loop_shape(g, other)->size) other = c;
    }
    if (k < 0) k = other;
    done[k] = 1;
    g->order[pos] = k;
    int r = g->rule[k];
    int fusible = r == R_EW || (r == R_RED && full_reduce(slot(g, v->ins_slot[k])));
    if (joins(g, k, cur, first)) {
      g->group[k] = cur;
    } else if (fusible) {
      g->group[k] = cur = k;
      first = k;
    } else {
      g->group[k] = -1;
      cur = -1;
    }
  }
  /* Groups that the pool would split (at least two chunks of mx_grain of the members' summed
   * weighted cost, as a kernel splits) run as chunk functions. A group with reductions is cut
   * into `parts` fixed ranges (from its size and cost only, never the thread count), each
   * folded serially into a partial; the partials are folded in order after the pool. */
  for (int k = 0; k < v->n_ins; k++)
    if (g->group[k] >= 0) g->cost[g->group[k]] += slot(g, v->ins_slot[k])->cost;
  for (int k = 0; k < v->n_ins; k++)
    if (g->group[k] == k) {
      mx_array probe = {.size = loop_shape(g, k)->size, .cost = g->cost[k]};
      g->grain[k] = mx_grain(&probe);
      g->par[k] = probe.size >= 2 * g->grain[k];
      g->parts[k] = probe.size / g->grain[k] < MAX_PARTS ? probe.size / g->grain[k] : MAX_PARTS;
    }
  for (int o = 0; o < v->n_out; o++) g->outside[v->out_slot[o]] = 1;
  for (int k = 0; k < v->n_ins; k++)
    for (int j = 0; j < n_inputs(g, k); j++) {
      int s = in_slot(g, k, j), p = g->prod[s];
      if (p < 0 || g->group[p] < 0 || g->group[p] != g->group[k] || g->rule[p] == R_RED) g->outside[s] = 1;
    }
  /* Storage: temporaries stay in the loop; small arrays on the stack, the rest in the arena. */
  size_t local = 0;
  for (int s = 0; s < v->n_slots; s++) {
    int k = g->prod[s];
    const mx_array *x = slot(g, s);
    size_t nb = (size_t)x->size * mx_dtype_size((mx_dtype)x->dtype);
    if (s < v->n_in) g->storage[s] = S_PTR;
    else if (v->is_const[s]) g->storage[s] = real_type((mx_dtype)x->dtype) && x->size <= CONST_LITERAL ? S_CONST : S_PTR;
    else if (k < 0 || g->rule[k] == R_CALL || g->rule[k] == R_ALIAS) g->storage[s] = S_PTR;
    else if (g->rule[k] == R_EW && !g->outside[s]) g->storage[s] = S_TEMP;
    else if (g->rule[k] == R_EW && g->group[k] >= 0 && (g->soff[s] = output_of(g, s)) >= 0)
      g->storage[s] = S_OUT; /* no copy pass after the loop */
    else if (local + nb <= LOCAL_BYTES) g->storage[s] = S_LOCAL, local += nb;
    else {
      g->storage[s] = S_SCRATCH;
      g->soff[s] = (int64_t)g->scratch;
      g->scratch += (nb + 63) & ~(size_t)63;
    }
  }
}

/* ---- emission --------------------------------------------------------------------------- */

static void put_value(sbuf *b, mx_dtype t, const void *data, int64_t i) {
  switch (t) {
    case MX_F64:
    case MX_F32: {
      double d = t == MX_F64 ? ((const double *)data)[i] : ((const float *)data)[i];
      if (d != d) put(b, "__builtin_nan(\"\")");
      else if (d == INFINITY || d == -INFINITY) put(b, "%sINFINITY", d < 0 ? "-" : "");
      else put(b, "%a", d);
      return;
    }
#define INT_VAL(ID, T) \
  case MX_##ID: put(b, "(%s)%lluULL", #T, (unsigned long long)(uint64_t)((const T *)data)[i]); return;
      MX_INT_TYPES(INT_VAL)
#undef INT_VAL
    case MX_BOOL: put(b, "%u", (unsigned)((const uint8_t *)data)[i]); return;
    default: put(b, "0"); return;
  }
}

/* Index variables of a loop nest over shape: i<d> for dims longer than 1. */
static void put_offset(sbuf *b, const mx_array *loop, const int64_t *st) {
  int any = 0;
  for (int d = 0; d < loop->ndim; d++)
    if (loop->shape[d] > 1 && st[d]) {
      put(b, "%si%d * %lld", any ? " + " : "", d, (long long)st[d]);
      any = 1;
    }
  if (!any) put(b, "0");
}

/* How generated code reads input slot s of a member of group grp over loop shape `loop`. */
static void put_read(const gen *g, sbuf *b, int s, int grp, const mx_array *loop) {
  int p = g->prod[s];
  if (g->storage[s] == S_TEMP || (p >= 0 && g->group[p] == grp && grp >= 0 && g->rule[p] == R_EW)) {
    put(b, "t%d", s);
    return;
  }
  int64_t st[MX_MAX_RANK];
  mx_broadcast_strides(slot(g, s), loop, st);
  put(b, "v%d[", s);
  put_offset(b, loop, st);
  put(b, "]");
}

static void open_loops(sbuf *b, const mx_array *loop) {
  for (int d = 0; d < loop->ndim; d++)
    if (loop->shape[d] > 1) put(b, "  for (int64_t i%d = 0; i%d < %lld; i%d++)\n", d, d, (long long)loop->shape[d], d);
  put(b, "  {\n");
}

/* Whether slot s reads the same element at every point of a loop longer than one element. */
static int invariant(const gen *g, int s, int grp, const mx_array *loop) {
  int p = g->prod[s];
  if (loop->size < 2 || g->storage[s] == S_TEMP || (p >= 0 && grp >= 0 && g->group[p] == grp)) return 0;
  int64_t st[MX_MAX_RANK];
  mx_broadcast_strides(slot(g, s), loop, st);
  for (int d = 0; d < loop->ndim; d++)
    if (st[d] && loop->shape[d] > 1) return 0;
  return 1;
}

/* The value of elementwise instruction k (output slot s) into local t<s>. */
static void emit_ew(const gen *g, sbuf *b, int k, int grp, const mx_array *loop) {
  int s = g->v->ins_slot[k];
  const mx_array *x = slot(g, s);
  mx_op op = (mx_op)x->op;
  mx_dtype ot = (mx_dtype)x->dtype, it = (mx_dtype)slot(g, in_slot(g, k, 0))->dtype;
  put(b, "    %s t%d;\n    { typedef %s T; ", ctype[ot], s, ctype[op == MX_OP_SELECT ? ot : it]);
  if (op == MX_OP_SELECT) {
    put(b, "const %s p = ", ctype[it]);
    put_read(g, b, in_slot(g, k, 0), grp, loop);
    put(b, "; const T a = ");
    put_read(g, b, in_slot(g, k, 1), grp, loop);
    put(b, ", b = ");
    put_read(g, b, in_slot(g, k, 2), grp, loop);
    put(b, "; t%d = %s; }\n", s, select_expr);
    return;
  }
  if (n_inputs(g, k) == 1) {
    put(b, "const T x = ");
    put_read(g, b, in_slot(g, k, 0), grp, loop);
    put(b, "; ");
    if (op == MX_OP_BROADCAST) put(b, "t%d = x; }\n", s);
    else if (op == MX_OP_AS_TYPE) put(b, ot == MX_BOOL ? "t%d = x != 0; }\n" : "t%d = (%s)x; }\n", s, ctype[ot]);
    else {
      const expr_row *r = find_row(op);
      const char *e = r->kind == E_FUNARY ? (it == MX_F32 ? r->iexpr : r->fexpr) : is_flt(it) ? r->fexpr : r->iexpr;
      put(b, "t%d = (%s)(%s); }\n", s, ctype[ot], e);
    }
    return;
  }
  const expr_row *r = find_row(op);
  put(b, "const T a = ");
  put_read(g, b, in_slot(g, k, 0), grp, loop);
  put(b, ", b = ");
  put_read(g, b, in_slot(g, k, 1), grp, loop);
  if (op == MX_OP_DIVIDE && is_flt(it) && invariant(g, in_slot(g, k, 1), grp, loop))
    put(b, "; const T r = 1 / b; t%d = (%s)(%s); }\n", s, ctype[ot], div_invariant);
  else
    put(b, "; t%d = (%s)(%s); }\n", s, ctype[ot], is_flt(it) ? r->fexpr : r->iexpr);
}

static const char *step_of(mx_op op) {
  switch (op) {
    case MX_OP_SUM: return STEP_TEXT(STEP_SUM);
    case MX_OP_PRODUCT: return STEP_TEXT(STEP_PROD);
    case MX_OP_REDUCE_MAX: return STEP_TEXT(STEP_MAX);
    default: return STEP_TEXT(STEP_MIN);
  }
}

/* The accumulator type of reduction slot s: ACC(T) for sum and product, T for max and min. */
static void put_acc_type(const gen *g, sbuf *b, int s) {
  mx_op op = (mx_op)slot(g, s)->op;
  const char *T = ctype[slot(g, s)->dtype];
  if (op == MX_OP_SUM || op == MX_OP_PRODUCT) put(b, "__typeof__(({ typedef %s T; (%s)0; }))", T, acc_type);
  else put(b, "%s", T);
}

/* Reduction member k's accumulator a<s> (with a first-element flag f<s> for max and min). */
static void emit_acc_init(const gen *g, sbuf *b, int k) {
  int s = g->v->ins_slot[k];
  mx_op op = (mx_op)slot(g, s)->op;
  put(b, "  ");
  put_acc_type(g, b, s);
  if (op == MX_OP_SUM || op == MX_OP_PRODUCT) put(b, " a%d = %d;\n", s, op == MX_OP_PRODUCT);
  else put(b, " a%d = 0; int f%d = 1;\n", s, s);
}

/* One element into reduction member k's accumulator, inside group grp's loop. */
static void emit_red_step(const gen *g, sbuf *b, int k, int grp, const mx_array *loop) {
  int s = g->v->ins_slot[k];
  mx_op op = (mx_op)slot(g, s)->op;
  put(b, "    { typedef %s T; const T x = ", ctype[slot(g, s)->dtype]);
  put_read(g, b, in_slot(g, k, 0), grp, loop);
  if (op == MX_OP_SUM || op == MX_OP_PRODUCT)
    put(b, "; const __typeof__(a%d) r = a%d; a%d = %s; }\n", s, s, s, step_of(op));
  else
    put(b, "; const T r = a%d; a%d = f%d ? x : %s; f%d = 0; }\n", s, s, s, step_of(op), s);
}

/* The loop body of the group starting at p0, for element i: each member's value or reduction step. */
static void emit_body(const gen *g, sbuf *b, int p0, const mx_array *loop) {
  const mx_tape_view *v = g->v;
  const int k0 = g->order[p0];
  for (int p = p0, k; p < v->n_ins && g->group[k = g->order[p]] == k0; p++) {
    int s = v->ins_slot[k];
    if (g->rule[k] == R_RED) {
      emit_red_step(g, b, k, k0, loop);
      continue;
    }
    emit_ew(g, b, k, k0, loop);
    if (g->storage[s] != S_TEMP) put(b, "    v%d[i] = t%d;\n", s, s);
  }
}

/* A group: one loop nest over its shape; full reductions accumulate in a<s>. */
static int emit_group(const gen *g, sbuf *b, int p0) {
  const mx_tape_view *v = g->v;
  const int k0 = g->order[p0];
  const mx_array *loop = loop_shape(g, k0);
  int p, k;
#define MEMBERS for (p = p0; p < v->n_ins && g->group[k = g->order[p]] == k0; p++)
  MEMBERS
    if (g->rule[k] == R_RED) emit_acc_init(g, b, k);
  int64_t cst[MX_MAX_RANK];
  mx_contiguous_strides(loop->ndim, loop->shape, cst);
  open_loops(b, loop);
  put(b, "    const int64_t i = ");
  put_offset(b, loop, cst);
  put(b, "; (void)i;\n");
  emit_body(g, b, p0, loop);
  put(b, "  }\n");
  if (loop->size >= CANCEL_CHECK) put(b, "  if (mx_cancelled()) return %d;\n", (int)MX_ECANCELLED);
  MEMBERS
    if (g->rule[k] == R_RED) {
      int s = v->ins_slot[k];
      put(b, "  v%d[0] = (%s)a%d;\n", s, ctype[slot(g, s)->dtype], s);
    }
#undef MEMBERS
  return p;
}

/* ---- split groups: a chunk function over a flat range, run by mx_parallel_for ------------ */

/* The slots a split group's chunk function reads or writes through pointers (C[1..]; C[0] is
 * the host table): inputs not computed in the loop and not literal constants, then its stored
 * members. The same list, in the same order, at the definition and at the call. */
static int chunk_args(gen *g, int p0, int *args) {
  const mx_tape_view *v = g->v;
  const int k0 = g->order[p0], stamp = ++g->stamp;
  int n = 0, p, k;
  for (p = p0; p < v->n_ins && g->group[k = g->order[p]] == k0; p++) {
    for (int j = 0; j < n_inputs(g, k); j++) {
      int s = in_slot(g, k, j), q = g->prod[s];
      if (g->storage[s] == S_TEMP || g->storage[s] == S_CONST || (q >= 0 && g->group[q] == k0) || g->mark[s] == stamp)
        continue;
      g->mark[s] = stamp;
      args[n++] = s;
    }
  }
  for (p = p0; p < v->n_ins && g->group[k = g->order[p]] == k0; p++)
    if (g->storage[v->ins_slot[k]] != S_TEMP) args[n++] = v->ins_slot[k];
  return n;
}

/* Whether group k0 (its first member) has a reduction member. */
static int group_reduces(const gen *g, int p0) {
  const int k0 = g->order[p0];
  int k;
  for (int p = p0; p < g->v->n_ins && g->group[k = g->order[p]] == k0; p++)
    if (g->rule[k] == R_RED) return 1;
  return 0;
}

/* Whether slot s is a reduction member of group k0: its chunk pointer is the partials pr<s>. */
static int partial_slot(const gen *g, int s, int k0) {
  int q = g->prod[s];
  return q >= 0 && g->group[q] == k0 && g->rule[q] == R_RED;
}

/* static void mxjit_g<k0>(C, lo, hi): the group's members over flat positions [lo, hi), the
 * innermost long axis as the inner loop (contiguous: gcc vectorizes it; restrict: the
 * outputs are scratch or the call's own output buffers, never an input). A group with
 * reductions takes part numbers [plo, phi) instead: part j covers [j N / P, (j + 1) N / P)
 * and leaves each reduction's fold of it in pr<s>[j]. */
static void emit_chunk_fn(gen *g, sbuf *b, int p0) {
  const mx_tape_view *v = g->v;
  const int k0 = g->order[p0], reduces = group_reduces(g, p0);
  const mx_array *loop = loop_shape(g, k0);
  int n = chunk_args(g, p0, g->args), last = -1, p, k;
  put(b, "static void mxjit_g%d(void *C_, int64_t %s, int64_t %s) {\n  void **C = (void **)C_;\n"
         "  const struct mx_jit_host *H = (const struct mx_jit_host *)C[0]; (void)H;\n",
      k0, reduces ? "plo" : "lo", reduces ? "phi" : "hi");
  for (int a = 0; a < n; a++) {
    int s = g->args[a], out = g->prod[s] >= 0 && g->group[g->prod[s]] == k0;
    const char *T = ctype[slot(g, s)->dtype];
    if (partial_slot(g, s, k0)) {
      put(b, "  ");
      put_acc_type(g, b, s);
      put(b, " *restrict pr%d = C[%d];\n", s, a + 1);
    } else {
      put(b, "  %s%s *restrict v%d = (%s *)C[%d];\n", out ? "" : "const ", T, s, T, a + 1);
    }
  }
  for (int s = 0; s < v->n_slots; s++)
    if (g->storage[s] == S_CONST) { /* literal constants the members read */
      int used = 0;
      for (p = p0; p < v->n_ins && g->group[k = g->order[p]] == k0; p++)
        for (int j = 0; j < n_inputs(g, k); j++) used |= in_slot(g, k, j) == s;
      if (used) put(b, "  const %s *v%d = c%d;\n", ctype[slot(g, s)->dtype], s, s);
    }
  if (reduces) {
    put(b, "  for (int64_t part = plo; part < phi; part++) {\n  const int64_t lo = part * %lld / %lld, hi = (part + 1) * %lld / %lld;\n",
        (long long)loop->size, (long long)g->parts[k0], (long long)loop->size, (long long)g->parts[k0]);
    for (p = p0; p < v->n_ins && g->group[k = g->order[p]] == k0; p++)
      if (g->rule[k] == R_RED) emit_acc_init(g, b, k);
  }
  for (int d = 0; d < loop->ndim; d++)
    if (loop->shape[d] > 1) last = d;
  long long nl = (long long)loop->shape[last];
  put(b, "  for (int64_t at = lo; at < hi;) {\n    int64_t q = at / %lld;\n", nl);
  put(b, "    const int64_t i%d_0 = at - q * %lld, base = at - i%d_0, stop = hi - base < %lld ? hi - base : %lld;\n",
      last, nl, last, nl, nl);
  for (int d = last - 1; d >= 0; d--)
    if (loop->shape[d] > 1)
      put(b, "    const int64_t i%d = q %% %lld; q /= %lld;\n", d, (long long)loop->shape[d], (long long)loop->shape[d]);
  put(b, "    (void)q;\n    for (int64_t i%d = i%d_0; i%d < stop; i%d++) {\n    const int64_t i = base + i%d; (void)i;\n", last,
      last, last, last, last);
  emit_body(g, b, p0, loop);
  put(b, "    }\n    at = base + stop;\n  }\n");
  if (reduces) {
    for (p = p0; p < v->n_ins && g->group[k = g->order[p]] == k0; p++)
      if (g->rule[k] == R_RED) put(b, "  pr%d[part] = a%d;\n", v->ins_slot[k], v->ins_slot[k]);
    put(b, "  }\n");
  }
  put(b, "}\n");
}

/* The call in mxjit_run: pointers into C; the pool splits [0, size) in chunks of the group's
 * grain (~100 us each), or a group with reductions its parts, whose partials are then folded
 * in part order (so the bits depend on the tape, not on the threads). Returns the position
 * after the group. */
static int emit_split_call(gen *g, sbuf *b, int p0) {
  const mx_tape_view *v = g->v;
  const int k0 = g->order[p0], reduces = group_reduces(g, p0);
  const long long P = (long long)g->parts[k0];
  int n = chunk_args(g, p0, g->args), p = p0, k;
  put(b, "  {\n");
  for (int a = 0; a < n; a++)
    if (partial_slot(g, g->args[a], k0)) {
      put(b, "    ");
      put_acc_type(g, b, g->args[a]);
      put(b, " pr%d[%lld];\n", g->args[a], P);
    }
  put(b, "    void *C[%d] = {(void *)H", n + 1);
  for (int a = 0; a < n; a++) put(b, ", (void *)%s%d", partial_slot(g, g->args[a], k0) ? "pr" : "v", g->args[a]);
  if (reduces) put(b, "};\n    mx_parallel_for(%lld, 1, mxjit_g%d, C);\n", P, k0);
  else
    put(b, "};\n    mx_parallel_for(%lld, %lld, mxjit_g%d, C);\n", (long long)loop_shape(g, k0)->size,
        (long long)g->grain[k0], k0);
  put(b, "    if (mx_cancelled()) return %d;\n", (int)MX_ECANCELLED);
  for (; p < v->n_ins && g->group[k = g->order[p]] == k0; p++)
    if (g->rule[k] == R_RED) {
      int s = v->ins_slot[k];
      put(b, "    { __typeof__(pr%d[0]) a = pr%d[0]; typedef %s T; (void)sizeof(T);\n", s, s, ctype[slot(g, s)->dtype]);
      put(b, "      for (int64_t j = 1; j < %lld; j++) { const __typeof__(a) r = a, x = pr%d[j]; a = %s; }\n", P, s,
          step_of((mx_op)slot(g, s)->op));
      put(b, "      v%d[0] = (T)a; }\n", s);
    }
  put(b, "  }\n");
  return p;
}

/* A reduction over some axes: loops over kept axes outside, reduced ones inside. */
static void emit_reduce(const gen *g, sbuf *b, int k) {
  int s = g->v->ins_slot[k], in = in_slot(g, k, 0);
  const mx_array *x = slot(g, s), *a = slot(g, in);
  uint8_t red[MX_MAX_RANK] = {0};
  for (int i = 0; i < x->params->nip; i++) red[x->params->ip[i]] = 1;
  int64_t cst[MX_MAX_RANK], ost[MX_MAX_RANK] = {0}, m = 1;
  mx_contiguous_strides(a->ndim, a->shape, cst);
  for (int d = a->ndim - 1; d >= 0; d--)
    if (!red[d]) ost[d] = m, m *= a->shape[d];
  mx_op op = (mx_op)x->op;
  int sum = op == MX_OP_SUM || op == MX_OP_PRODUCT;
  put(b, "  { typedef %s T;\n", ctype[x->dtype]);
  for (int d = 0; d < a->ndim; d++)
    if (!red[d] && a->shape[d] > 1) put(b, "  for (int64_t i%d = 0; i%d < %lld; i%d++)\n", d, d, (long long)a->shape[d], d);
  put(b, "  { %s acc = %s; int first = 1; (void)first;\n", sum ? acc_type : "T", op == MX_OP_PRODUCT ? "1" : "0");
  for (int d = 0; d < a->ndim; d++)
    if (red[d] && a->shape[d] > 1) put(b, "  for (int64_t i%d = 0; i%d < %lld; i%d++)\n", d, d, (long long)a->shape[d], d);
  put(b, "    { const T x = v%d[", in);
  put_offset(b, a, cst);
  if (sum) put(b, "]; const __typeof__(acc) r = acc; acc = %s; }\n", step_of(op));
  else put(b, "]; const T r = acc; acc = first ? x : %s; first = 0; }\n", step_of(op));
  put(b, "    v%d[", s);
  put_offset(b, a, ost);
  put(b, "] = (T)acc; }\n  }\n");
}

static void emit_matmul(const gen *g, sbuf *b, int k) {
  int s = g->v->ins_slot[k], A = in_slot(g, k, 0), B = in_slot(g, k, 1);
  const mx_array *a = slot(g, A), *bb = slot(g, B);
  long long m = a->shape[0], kk = a->shape[1], n = bb->shape[1];
  put(b, "  for (int64_t i = 0; i < %lld; i++) for (int64_t j = 0; j < %lld; j++) {\n", m, n);
  put(b, "    %s acc = 0; for (int64_t l = 0; l < %lld; l++) acc += v%d[i * %lld + l] * v%d[l * %lld + j];\n",
      ctype[slot(g, s)->dtype], kk, A, kk, B, n);
  put(b, "    v%d[i * %lld + j] = acc; }\n", s, n);
}

/* Nested loops i0.. over shape (axes of one element skipped); body is put by the caller. */
static void put_loops(sbuf *b, int r, const int64_t *shape) {
  for (int d = 0; d < r; d++)
    if (shape[d] > 1) put(b, "  for (int64_t i%d = 0; i%d < %lld; i%d++)\n", d, d, (long long)shape[d], d);
}

/* base + sum of i_d * st_d over the axes put_loops iterates. */
static void put_index(sbuf *b, int r, const int64_t *shape, int64_t base, const int64_t *st) {
  put(b, "%lld", (long long)base);
  for (int d = 0; d < r; d++)
    if (shape[d] > 1 && st[d]) put(b, " + i%d * %lld", d, (long long)st[d]);
}

/* slice: the kernel's index map (mx_k_slice) with static starts and strides. */
static void emit_slice(const gen *g, sbuf *b, int k) {
  int s = g->v->ins_slot[k], in = in_slot(g, k, 0);
  const mx_array *x = slot(g, s), *a = slot(g, in);
  int r = x->ndim;
  const int64_t *start = x->params->ip, *stride = x->params->ip + r;
  int64_t astr[MX_MAX_RANK], ostr[MX_MAX_RANK], sstr[MX_MAX_RANK], base = 0;
  mx_contiguous_strides(r, a->shape, astr);
  mx_contiguous_strides(r, x->shape, ostr);
  for (int d = 0; d < r; d++) base += start[d] * astr[d], sstr[d] = astr[d] * stride[d];
  put_loops(b, r, x->shape);
  put(b, "    v%d[", s);
  put_index(b, r, x->shape, 0, ostr);
  put(b, "] = v%d[", in);
  put_index(b, r, x->shape, base, sstr);
  put(b, "];\n");
}

static int64_t floor_div64(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* pad: the pad value everywhere, then the input at lo + c * (interior + 1) (mx_k_pad's map). */
static void emit_pad(const gen *g, sbuf *b, int k) {
  int s = g->v->ins_slot[k], in = in_slot(g, k, 0), pv = in_slot(g, k, 1);
  const mx_array *x = slot(g, s), *a = slot(g, in);
  int r = x->ndim, copy = 1;
  const int64_t *lo = x->params->ip, *interior = x->params->ip + 2 * r;
  int64_t astr[MX_MAX_RANK], ostr[MX_MAX_RANK], shape[MX_MAX_RANK], dstr[MX_MAX_RANK], dbase = 0, sbase = 0;
  mx_contiguous_strides(r, a->shape, astr);
  mx_contiguous_strides(r, x->shape, ostr);
  for (int d = 0; d < r; d++) {
    int64_t n = a->shape[d], st = interior[d] + 1;
    int64_t cmin = lo[d] < 0 ? (-lo[d] + st - 1) / st : 0, cmax = floor_div64(x->shape[d] - 1 - lo[d], st);
    if (cmax > n - 1) cmax = n - 1;
    if (cmax < cmin) copy = 0;
    shape[d] = cmax - cmin + 1;
    dbase += (lo[d] + cmin * st) * ostr[d];
    dstr[d] = st * ostr[d];
    sbase += cmin * astr[d];
  }
  put(b, "  for (int64_t i = 0; i < %lld; i++) v%d[i] = v%d[0];\n", (long long)x->size, s, pv);
  if (!copy) return;
  put_loops(b, r, shape);
  put(b, "    v%d[", s);
  put_index(b, r, shape, dbase, dstr);
  put(b, "] = v%d[", in);
  put_index(b, r, shape, sbase, astr);
  put(b, "];\n");
}

mx_status mx_jit_source(const mx_tape *t, char **src, size_t *scratch_bytes) {
  mx_tape_view v;
  mx_tape_view_get(t, &v);
  gen g = {.v = &v};
  size_t ni = (size_t)(v.n_ins ? v.n_ins : 1), ns = (size_t)(v.n_slots ? v.n_slots : 1);
  g.rule = calloc(ni, sizeof(int));
  g.group = calloc(ni, sizeof(int));
  g.prod = calloc(ns, sizeof(int));
  g.outside = calloc(ns, sizeof(int));
  g.storage = calloc(ns, sizeof(int));
  g.soff = calloc(ns, sizeof(int64_t));
  g.order = calloc(ni, sizeof(int));
  g.done = calloc(ni, 1);
  g.par = calloc(ni, 1);
  g.mark = calloc(ns, sizeof(int));
  g.args = calloc(ns, sizeof(int));
  g.cost = calloc(ni, sizeof(int64_t));
  g.grain = calloc(ni, sizeof(int64_t));
  g.parts = calloc(ni, sizeof(int64_t));
  sbuf b = {0};
  mx_status st = MX_OK;
  if (!g.rule || !g.group || !g.prod || !g.outside || !g.storage || !g.soff || !g.order || !g.done || !g.par || !g.mark || !g.args || !g.cost || !g.grain || !g.parts) {
    st = mx_error(MX_ENOMEM, "[compile] out of memory generating C");
    goto done;
  }
  classify(&g);
  put(&b, "/* GenMX generated code: one tape. */\n%s\n", elementwise_h);
  put(&b, "struct mx_jit_host {\n");
#define HOST_TEXT(R, name, params) put(&b, "  %s(*%s)%s;\n", #R, #name, #params);
  MX_JIT_SPECIALS(HOST_TEXT)
#undef HOST_TEXT
  put(&b, "};\n");
#define HOST_MACRO(R, name, params) put(&b, "#define %s (H->%s)\n", #name, #name);
  MX_JIT_SPECIALS(HOST_MACRO)
#undef HOST_MACRO
  for (int s = 0; s < v.n_slots; s++)
    if (g.storage[s] == S_CONST) {
      const mx_array *c = &v.slots[s];
      put(&b, "static const %s c%d[%lld] = {", ctype[c->dtype], s, (long long)(c->size ? c->size : 1));
      for (int64_t i = 0; i < c->size; i++) {
        if (i) put(&b, ", ");
        put_value(&b, (mx_dtype)c->dtype, mx_data(c), i);
      }
      put(&b, "};\n");
    }
  for (int p = 0; p < v.n_ins; p++)
    if (g.group[g.order[p]] == g.order[p] && g.par[g.order[p]]) emit_chunk_fn(&g, &b, p);
  put(&b, "__attribute__((visibility(\"default\"))) int mxjit_run(void **P, void *const *O, const struct mx_jit_host *H, "
           "int (*call)(void *, int), void *ctx, char *S) {\n  (void)H; (void)call; (void)ctx; (void)S; int rc = 0; (void)rc;\n");
  for (int s = 0; s < v.n_slots; s++) {
    const mx_array *x = &v.slots[s];
    const char *T = ctype[x->dtype] ? ctype[x->dtype] : "uint8_t";
    switch (g.storage[s]) {
      case S_CONST: put(&b, "  const %s *v%d = c%d;\n", T, s, s); break;
      case S_LOCAL: put(&b, "  %s v%d[%lld];\n", T, s, (long long)x->size); break;
      case S_SCRATCH: put(&b, "  %s *v%d = (%s *)(S + %lld);\n", T, s, T, (long long)g.soff[s]); break;
      case S_OUT: put(&b, "  %s *v%d = (%s *)O[%lld];\n", T, s, T, (long long)g.soff[s]); break;
      case S_PTR:
        if (s < v.n_in || v.is_const[s]) put(&b, "  const %s *v%d = (const %s *)P[%d];\n", T, s, T, s);
        else put(&b, "  const %s *v%d = 0;\n", T, s);
        break;
      default: break;
    }
  }
  for (int p = 0; p < v.n_ins;) {
    int k = g.order[p], s = v.ins_slot[k];
    put(&b, "  /* %d: %s */\n", k, mx_ops[v.slots[s].op].name);
    if (g.group[k] == k) {
      p = g.par[k] ? emit_split_call(&g, &b, p) : emit_group(&g, &b, p);
      continue;
    }
    switch (g.rule[k]) {
      case R_ALIAS: put(&b, "  v%d = (const void *)v%d;\n", s, in_slot(&g, k, 0)); break;
      case R_RED: emit_reduce(&g, &b, k); break;
      case R_MATMUL: emit_matmul(&g, &b, k); break;
      case R_SLICE: emit_slice(&g, &b, k); break;
      case R_PAD: emit_pad(&g, &b, k); break;
      default:
        for (int j = 0; j < n_inputs(&g, k); j++) {
          int q = in_slot(&g, k, j);
          if (q >= v.n_in && !v.is_const[q]) put(&b, "  P[%d] = (void *)v%d;\n", q, q);
        }
        put(&b, "  if ((rc = call(ctx, %d))) return rc;\n  v%d = (const void *)P[%d];\n", k, s, s);
        break;
    }
    p++;
  }
  for (int o = 0; o < v.n_out; o++) {
    int s = v.out_slot[o];
    const mx_array *x = &v.slots[s];
    if (g.storage[s] == S_OUT && g.soff[s] == o) continue; /* written in place */
    /* not copied onto itself: an output already in place (a kernel's result), or a slot given as
     * several outputs that share one buffer (a replay's results; raw callers give each its own) */
    int first = 0;
    while (v.out_slot[first] != s) first++;
    put(&b, "  if ((const void *)O[%d] != (const void *)v%d", o, s);
    if (first < o) put(&b, " && O[%d] != O[%d]", o, first);
    put(&b, ")\n");
    put(&b, "    for (int64_t i = 0; i < %lld; i++) ((%s *)O[%d])[i] = v%d[i];\n", (long long)x->size, ctype[x->dtype], o, s);
  }
  put(&b, "  return 0;\n}\n");
  if (b.oom) st = mx_error(MX_ENOMEM, "[compile] out of memory generating C");
done:
  free(g.rule);
  free(g.group);
  free(g.prod);
  free(g.outside);
  free(g.storage);
  free(g.soff);
  free(g.order);
  free(g.done);
  free(g.par);
  free(g.mark);
  free(g.args);
  free(g.cost);
  free(g.grain);
  free(g.parts);
  if (st) {
    free(b.s);
    return st;
  }
  *src = b.s;
  *scratch_bytes = g.scratch;
  return MX_OK;
}

/* ---- SHA-256 (FIPS 180-4): cache keys and file checks ------------------------------------ */

typedef struct {
  uint32_t h[8];
  uint64_t len;
  uint8_t buf[64];
  size_t n;
} sha256;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }

static void sha_block(sha256 *c, const uint8_t *p) {
  uint32_t w[64], a[8];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  memcpy(a, c->h, sizeof a);
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = a[7] + (ror(a[4], 6) ^ ror(a[4], 11) ^ ror(a[4], 25)) + ((a[4] & a[5]) ^ (~a[4] & a[6])) + K256[i] + w[i];
    uint32_t t2 = (ror(a[0], 2) ^ ror(a[0], 13) ^ ror(a[0], 22)) + ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
    memmove(a + 1, a, 7 * sizeof *a);
    a[4] += t1;
    a[0] = t1 + t2;
  }
  for (int i = 0; i < 8; i++) c->h[i] += a[i];
}

static void sha_init(sha256 *c) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, h0, sizeof h0);
  c->len = 0;
  c->n = 0;
}

static void sha_add(sha256 *c, const void *data, size_t n) {
  const uint8_t *p = data;
  c->len += n;
  while (n > 0) {
    size_t k = 64 - c->n < n ? 64 - c->n : n;
    memcpy(c->buf + c->n, p, k);
    c->n += k, p += k, n -= k;
    if (c->n == 64) sha_block(c, c->buf), c->n = 0;
  }
}

/* Hex digest into out[65]. */
static void sha_hex(sha256 *c, char *out) {
  uint64_t bits = c->len * 8;
  uint8_t pad = 0x80, zero = 0, lenb[8];
  sha_add(c, &pad, 1);
  while (c->n != 56) sha_add(c, &zero, 1);
  for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha_add(c, lenb, 8);
  for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", c->h[i]);
}

/* ---- state, info ----------------------------------------------------------------------- */

struct mx_jit {
  _Atomic int tier;
  _Atomic(mx_jit_fn) fn;
  void *handle;
  size_t scratch;
  int64_t wall_ns, cpu_ns;
  int cache_hit;
  char reason[512];
};

mx_jit_fn mx_jit_native(mx_jit *j, size_t *scratch_bytes) {
  mx_jit_fn fn = atomic_load_explicit(&j->fn, memory_order_acquire);
  *scratch_bytes = j->scratch;
  return fn;
}

void mx_jit_free(mx_jit *j) {
  if (!j) return;
  if (j->handle) dlclose(j->handle);
  free(j);
}

void mx_tape_jit_info(mx_tape *t, mx_jit_info *info) {
  mx_jit *j = mx_tape_jit(t);
  if (!j) {
    *info = (mx_jit_info){MX_TIER_INTERPRETER, 0, 0, 0, ""};
    return;
  }
  int tier = atomic_load_explicit(&j->tier, memory_order_acquire);
  /* reason and timings are written before the tier leaves COMPILING */
  *info = (mx_jit_info){(mx_tier)tier, tier == MX_TIER_COMPILING ? 0 : j->wall_ns, tier == MX_TIER_COMPILING ? 0 : j->cpu_ns,
                        tier == MX_TIER_COMPILING ? 0 : j->cache_hit, tier == MX_TIER_COMPILING ? "" : j->reason};
}

mx_tier mx_tape_jit_wait(mx_tape *t, int64_t timeout_ns) {
  struct timespec pause = {0, 50000}; /* a disk-cache hit takes about a millisecond: look often */
  for (int64_t waited = 0;; waited += 50000) {
    mx_jit *j = mx_tape_jit(t);
    int tier = j ? atomic_load(&j->tier) : MX_TIER_INTERPRETER;
    if (tier != MX_TIER_COMPILING || (timeout_ns >= 0 && waited >= timeout_ns)) return (mx_tier)tier;
    nanosleep(&pause, NULL);
  }
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the compiler ---------------------------------------------------------------------- */

/* $CC split into words as make does ("gcc -m64": the compiler, then its own arguments); returns
 * the count (0 when unset or blank), the words pointing into buf. */
enum { MAX_CC_WORDS = 16 };
static int cc_words(const char *cc_env, char *buf, size_t cap, char **words) {
  snprintf(buf, cap, "%s", cc_env ? cc_env : "");
  int n = 0;
  for (char *save = NULL, *w = strtok_r(buf, " \t", &save); w && n < MAX_CC_WORDS; w = strtok_r(NULL, " \t", &save))
    words[n++] = w;
  return n;
}

/* The compiler's absolute path ($CC's first word, else the one the NIF was built with, searched
 * on PATH). */
static int find_compiler(char *path, size_t cap, const char *cc_env, const char *env) {
  char buf[1024], *words[MAX_CC_WORDS];
  const char *cc = cc_words(cc_env, buf, sizeof buf, words) ? words[0] : MX_JIT_CC;
  if (strchr(cc, '/')) {
    snprintf(path, cap, "%s", cc);
    return access(path, X_OK) == 0;
  }
  char dirs[4096];
  snprintf(dirs, sizeof dirs, "%s", env ? env : "/usr/bin:/bin");
  for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    snprintf(path, cap, "%s/%s", d, cc);
    if (access(path, X_OK) == 0) return 1;
  }
  snprintf(path, cap, "%s", cc);
  return 0;
}

/* Runs argv with stdout and stderr into log_path; its exit status (-1: could not start, errno
 * set) and the CPU time of it and its children. The BEAM ignores SIGCHLD, so its children are
 * reaped at once and cannot be waited for: the command runs under /bin/sh with SIGCHLD back
 * to default, which waits for it and writes `times` and the status to a pipe (EOF: done). */
static int spawn_wait(char *const *argv, const char *log_path, int64_t *cpu_ns) {
  int p[2];
  if (pipe2(p, O_CLOEXEC)) return -1;
  char *shv[64];
  int n = 0;
  shv[n++] = "/bin/sh";
  shv[n++] = "-c";
  shv[n++] = "\"$@\" 3>&-; s=$?; times >&3; echo $s >&3";
  shv[n++] = "sh";
  for (int i = 0; argv[i] && n < 63; i++) shv[n++] = argv[i];
  shv[n] = NULL;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_adddup2(&fa, p[1], 3);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t def, none;
  sigemptyset(&def);
  sigaddset(&def, SIGCHLD);
  sigaddset(&def, SIGPIPE);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&at, &def);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int rc = posix_spawn(&pid, "/bin/sh", &fa, &at, shv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(p[1]);
  char out[512];
  size_t got = 0;
  while (!rc && got < sizeof out - 1) {
    ssize_t r = read(p[0], out + got, sizeof out - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(p[0]);
  if (rc) {
    errno = rc;
    return -1;
  }
  waitpid(pid, NULL, WNOHANG); /* reaps it where SIGCHLD is not ignored (C tests) */
  out[got] = 0;
  int m1, m2, status;
  double s1, s2;
  char *line2 = strchr(out, '\n');
  if (!line2 || sscanf(line2 + 1, "%dm%lfs %dm%lfs %d", &m1, &s1, &m2, &s2, &status) != 5) {
    errno = ECHILD;
    return -1;
  }
  *cpu_ns += (int64_t)((m1 * 60 + s1 + m2 * 60 + s2) * 1e9);
  return status;
}

static void read_head(const char *path, char *out, size_t cap);

/* `cc --version` for the cache key, run once per compiler path and modification time (the
 * compile queue is the only caller: one thread). */
static void compiler_version(const char *cc, const char *log, char *version, size_t cap) {
  static char last_cc[1024], last_version[256];
  static struct timespec last_mtime;
  struct stat st;
  int have = stat(cc, &st) == 0;
  if (have && !strcmp(cc, last_cc) && st.st_mtim.tv_sec == last_mtime.tv_sec && st.st_mtim.tv_nsec == last_mtime.tv_nsec) {
    snprintf(version, cap, "%s", last_version);
    return;
  }
  char *vargv[] = {(char *)cc, "--version", NULL};
  int64_t cpu = 0;
  version[0] = 0;
  if (spawn_wait(vargv, log, &cpu) == 0) read_head(log, version, cap);
  if (have) {
    snprintf(last_cc, sizeof last_cc, "%s", cc);
    snprintf(last_version, sizeof last_version, "%s", version);
    last_mtime = st.st_mtim;
  }
}

static void read_head(const char *path, char *out, size_t cap) {
  out[0] = 0;
  FILE *f = fopen(path, "r");
  if (!f) return;
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = 0;
  fclose(f);
  for (char *p = out; *p; p++)
    if (*p == '\n' && p[1]) *p = ' ';
  size_t l = strlen(out);
  if (l && out[l - 1] == '\n') out[l - 1] = 0;
}

/* ---- the disk cache ---------------------------------------------------------------------- */

/* Ours and not group/world writable. */
static int private_stat(const struct stat *st) { return st->st_uid == geteuid() && !(st->st_mode & 022); }

/* $XDG_CACHE_HOME/genmx or ~/.cache/genmx, created 0700; 0 (and why) when it is unsafe. */
static int cache_dir(char *dir, size_t cap, char *why, size_t wcap, const char *x, const char *home) {
  char base[1024];
  if (x && x[0] == '/') snprintf(base, sizeof base, "%s", x);
  else if (home && home[0] == '/') snprintf(base, sizeof base, "%s/.cache", home);
  else {
    snprintf(why, wcap, "no cache directory (neither XDG_CACHE_HOME nor HOME is an absolute path)");
    return 0;
  }
  mkdir(base, 0700);
  snprintf(dir, cap, "%s/genmx", base);
  if (mkdir(dir, 0700) && errno != EEXIST) {
    snprintf(why, wcap, "cache %.300s not created: %s", dir, strerror(errno));
    return 0;
  }
  struct stat st;
  if (lstat(dir, &st) || !S_ISDIR(st.st_mode)) {
    snprintf(why, wcap, "cache %.300s refused: not a directory", dir);
    return 0;
  }
  if (!private_stat(&st)) {
    snprintf(why, wcap, "cache %.300s refused: %s", dir,
             st.st_uid != geteuid() ? "owned by another user" : "group or world writable");
    return 0;
  }
  return 1;
}

/* Opens path if it is a regular file of ours, not group/world writable; -1 otherwise. */
static int open_private(const char *path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode) || !private_stat(&st) || st.st_size == 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* An open file's bytes (at most 256 MB), malloc'd. */
static char *read_fd(int fd, size_t *n) {
  struct stat st;
  if (fstat(fd, &st) || st.st_size <= 0 || st.st_size > ((off_t)256 << 20)) return NULL;
  char *buf = malloc((size_t)st.st_size);
  size_t got = 0;
  while (buf && got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  if (!buf || got != (size_t)st.st_size) {
    free(buf);
    return NULL;
  }
  *n = got;
  return buf;
}

static int write_file(const char *path, const char *data, size_t n);

/* Loads so_path when it and sum_path are private files and the object's bytes hash to the
 * sidecar's digest. The bytes that were hashed are what gets loaded: they are written to a
 * fresh file in the job's private directory (a new name and inode, so the loader cannot
 * hand back another object), opened, and unlinked. The object must export this key. */
static void *load_verified(const char *so_path, const char *sum_path, const char *key, const char *scratch_dir, char *why,
                           size_t wcap) {
  int fd = open_private(so_path), sfd = open_private(sum_path);
  char want[80] = {0}, got[65], load[1400];
  size_t n = 0;
  char *bytes = fd >= 0 ? read_fd(fd, &n) : NULL;
  void *h = NULL;
  if (fd < 0 || sfd < 0 || !bytes) {
    snprintf(why, wcap, "no private cached object");
  } else {
    sha256 c;
    sha_init(&c);
    sha_add(&c, bytes, n);
    sha_hex(&c, got);
    snprintf(load, sizeof load, "%s/load.so", scratch_dir);
    unlink(load);
    if (read(sfd, want, 64) != 64 || memcmp(want, got, 64)) {
      snprintf(why, wcap, "cached object does not match its digest");
    } else if (!write_file(load, bytes, n)) {
      snprintf(why, wcap, "could not stage the object for loading");
    } else {
      h = dlopen(load, RTLD_NOW | RTLD_LOCAL);
      unlink(load);
      const char *k = h ? dlsym(h, "mxjit_key") : NULL;
      if (!h) snprintf(why, wcap, "dlopen: %.400s", dlerror());
      else if (!k || strcmp(k, key) || !dlsym(h, "mxjit_run")) {
        snprintf(why, wcap, "cached object is not this tape's");
        dlclose(h);
        h = NULL;
      }
    }
  }
  free(bytes);
  if (fd >= 0) close(fd);
  if (sfd >= 0) close(sfd);
  return h;
}

static int write_file(const char *path, const char *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, data + done, n - done);
    if (w <= 0) break;
    done += (size_t)w;
  }
  return close(fd) == 0 && done == n;
}

/* ---- the compile task ---------------------------------------------------------------------- */

enum { ENV_MX_JIT, ENV_CC, ENV_XDG, ENV_HOME, ENV_TMPDIR, ENV_PATH, N_ENV };

typedef struct jit_job {
  mx_tape *tape;
  mx_jit *jit;
  char *src;
  char *env[N_ENV]; /* copies; NULL: unset */
  struct jit_job *next;
} jit_job;

/* One compiler at a time: jobs queue here and one engine task drains the queue. */
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static jit_job *queue_head, *queue_tail;
static int queue_worker;

static void job_free(void *ctx) {
  jit_job *j = ctx;
  mx_tape_release(j->tape);
  free(j->src);
  for (int i = 0; i < N_ENV; i++) free(j->env[i]);
  free(j);
}

static void finish(mx_jit *j, void *handle, const char *reason) {
  if (handle) {
    j->handle = handle;
    atomic_store_explicit(&j->fn, (mx_jit_fn)dlsym(handle, "mxjit_run"), memory_order_release);
  }
  if (reason) snprintf(j->reason, sizeof j->reason, "%s", reason);
  atomic_store_explicit(&j->tier, handle ? MX_TIER_NATIVE : MX_TIER_FAILED, memory_order_release);
}

static void remove_tree(const char *dir, const char *const *names, int n) {
  char p[1400];
  for (int i = 0; i < n; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  rmdir(dir);
}

static void compile_job(jit_job *job) {
  mx_jit *j = job->jit;
  int64_t t0 = mono_ns();
  char cc[1024], version[256] = "", key[65], why[512] = "", dir[1100], note[600] = "";
  find_compiler(cc, sizeof cc, job->env[ENV_CC], job->env[ENV_PATH]); /* checked at start */
  /* The key: source, compiler (path and version), flags. */
  char tmp_base[1200], log[1300];
  const char *tmpdir = job->env[ENV_TMPDIR];
  snprintf(tmp_base, sizeof tmp_base, "%s/genmx-XXXXXX", tmpdir && tmpdir[0] == '/' ? tmpdir : "/tmp");
  int cached = cache_dir(dir, sizeof dir, note, sizeof note, job->env[ENV_XDG], job->env[ENV_HOME]);
  if (cached) snprintf(tmp_base, sizeof tmp_base, "%s/build-XXXXXX", dir);
  if (!mkdtemp(tmp_base)) {
    snprintf(why, sizeof why, "no private build directory: %s", strerror(errno));
    finish(j, NULL, why);
    return;
  }
  snprintf(log, sizeof log, "%s/version.txt", tmp_base);
  int64_t cpu = 0;
  compiler_version(cc, log, version, sizeof version);
  sha256 c;
  sha_init(&c);
  sha_add(&c, job->src, strlen(job->src) + 1);
  sha_add(&c, cc, strlen(cc) + 1);
  sha_add(&c, version, strlen(version) + 1);
  char cc_buf[1024], *cc_args[MAX_CC_WORDS];
  int n_cc = cc_words(job->env[ENV_CC], cc_buf, sizeof cc_buf, cc_args);
  for (int i = 1; i < n_cc; i++) sha_add(&c, cc_args[i], strlen(cc_args[i]) + 1);
  for (size_t i = 0; i < N_FLAGS; i++) sha_add(&c, jit_flags[i], strlen(jit_flags[i]) + 1);
  sha_hex(&c, key);
  char so_path[1300], sum_path[1300], src_path[1300], out_path[1300], osum_path[1300];
  const char *names[] = {"version.txt", "tape.c", "tape.so", "tape.sha256", "cc.log", "load.so"};
  if (cached) {
    snprintf(so_path, sizeof so_path, "%s/%s.so", dir, key);
    snprintf(sum_path, sizeof sum_path, "%s/%s.sha256", dir, key);
    void *h = load_verified(so_path, sum_path, key, tmp_base, why, sizeof why);
    if (h) {
      remove_tree(tmp_base, names, 6);
      j->cache_hit = 1;
      j->wall_ns = mono_ns() - t0;
      finish(j, h, note);
      return;
    }
  }
  /* Build: the source ends with its key, which the loader checks. */
  snprintf(src_path, sizeof src_path, "%s/tape.c", tmp_base);
  snprintf(out_path, sizeof out_path, "%s/tape.so", tmp_base);
  snprintf(osum_path, sizeof osum_path, "%s/tape.sha256", tmp_base);
  snprintf(log, sizeof log, "%s/cc.log", tmp_base);
  size_t n = strlen(job->src);
  char tail[256];
  int tl = snprintf(tail, sizeof tail, "__attribute__((visibility(\"default\"))) const char mxjit_key[] = \"%s\";\n", key);
  char *full = malloc(n + (size_t)tl + 1);
  if (!full || (memcpy(full, job->src, n), memcpy(full + n, tail, (size_t)tl + 1), !write_file(src_path, full, n + (size_t)tl))) {
    free(full);
    remove_tree(tmp_base, names, 6);
    finish(j, NULL, "could not write the generated source");
    return;
  }
  free(full);
  char *argv[N_FLAGS + MAX_CC_WORDS + 8];
  int a = 0;
  argv[a++] = cc;
  for (int i = 1; i < n_cc; i++) argv[a++] = cc_args[i];
  for (size_t i = 0; i < N_FLAGS; i++) argv[a++] = (char *)jit_flags[i];
  argv[a++] = "-o";
  argv[a++] = out_path;
  argv[a++] = src_path;
  argv[a++] = "-lm";
  argv[a] = NULL;
  int rc = spawn_wait(argv, log, &cpu);
  j->cpu_ns = cpu;
  if (rc != 0) {
    char head[400];
    if (rc < 0) snprintf(head, sizeof head, "could not run it: %s", strerror(errno));
    else read_head(log, head, sizeof head);
    snprintf(why, sizeof why, "%.200s exited with status %d: %.250s", cc, rc, head);
    remove_tree(tmp_base, names, 6);
    j->wall_ns = mono_ns() - t0;
    finish(j, NULL, why);
    return;
  }
  chmod(out_path, 0700); /* the compiler honours the umask; the cache keeps it to us */
  int fd = open_private(out_path);
  char digest[65];
  size_t nb = 0;
  char *bytes = fd >= 0 ? read_fd(fd, &nb) : NULL;
  if (bytes) {
    sha256 c;
    sha_init(&c);
    sha_add(&c, bytes, nb);
    sha_hex(&c, digest);
  }
  int ok = bytes && write_file(osum_path, digest, 64);
  free(bytes);
  if (fd >= 0) close(fd);
  void *h = NULL;
  if (ok && cached && rename(out_path, so_path) == 0 && rename(osum_path, sum_path) == 0)
    h = load_verified(so_path, sum_path, key, tmp_base, why, sizeof why);
  else if (ok)
    h = load_verified(out_path, osum_path, key, tmp_base, why, sizeof why);
  else
    snprintf(why, sizeof why, "could not hash the compiled object");
  remove_tree(tmp_base, names, 6);
  j->wall_ns = mono_ns() - t0;
  finish(j, h, h ? note : why);
  return;
}

static mx_status drain(void *ctx) {
  (void)ctx;
  for (;;) {
    pthread_mutex_lock(&queue_lock);
    jit_job *job = queue_head;
    if (job) queue_head = job->next;
    if (!queue_head) queue_tail = NULL;
    if (!job) queue_worker = 0;
    pthread_mutex_unlock(&queue_lock);
    if (!job) return MX_OK;
    compile_job(job);
    job_free(job);
  }
}

mx_status mx_tape_jit_start(mx_tape *t, const mx_jit_env *e) {
  static const char *const names[N_ENV] = {"MX_JIT", "CC", "XDG_CACHE_HOME", "HOME", "TMPDIR", "PATH"};
  const char *given[N_ENV] = {0};
  if (e) given[0] = e->mx_jit, given[1] = e->cc, given[2] = e->xdg_cache_home, given[3] = e->home, given[4] = e->tmpdir,
         given[5] = e->path;
  else
    for (int i = 0; i < N_ENV; i++) given[i] = getenv(names[i]);
  if (given[ENV_MX_JIT] && !strcmp(given[ENV_MX_JIT], "0")) return MX_OK;
  if (mx_tape_jit(t)) return MX_OK;
  mx_jit *j = calloc(1, sizeof *j);
  jit_job *job = calloc(1, sizeof *job);
  int oom = !j || !job;
  for (int i = 0; i < N_ENV && !oom; i++)
    if (given[i] && !(job->env[i] = strdup(given[i]))) oom = 1;
  if (oom) {
    free(j);
    if (job) job_free(job);
    return mx_error(MX_ENOMEM, "[compile] out of memory starting the native tier");
  }
  mx_tape_view v;
  mx_tape_view_get(t, &v);
  char cc[1024];
  if (v.n_ins > MAX_INSTRUCTIONS) {
    atomic_init(&j->tier, MX_TIER_INTERPRETER);
    snprintf(j->reason, sizeof j->reason, "%d instructions: past %d the tape stays on the interpreter", v.n_ins,
             MAX_INSTRUCTIONS);
    if (!mx_tape_jit_install(t, j)) mx_jit_free(j);
    job_free(job);
    return MX_OK;
  }
  if (!find_compiler(cc, sizeof cc, job->env[ENV_CC], job->env[ENV_PATH])) { /* no compiler: the interpreter, with a note */
    atomic_init(&j->tier, MX_TIER_INTERPRETER);
    snprintf(j->reason, sizeof j->reason, "no C compiler (%.400s)", cc);
    if (!mx_tape_jit_install(t, j)) mx_jit_free(j);
    job_free(job);
    return MX_OK;
  }
  atomic_init(&j->tier, MX_TIER_COMPILING);
  mx_status st = mx_jit_source(t, &job->src, &j->scratch);
  if (st || !mx_tape_jit_install(t, j)) { /* failed, or another caller started it */
    job_free(job);
    free(j);
    return st;
  }
  mx_tape_retain(t);
  job->tape = t;
  job->jit = j;
  pthread_mutex_lock(&queue_lock);
  if (queue_tail) queue_tail->next = job;
  else queue_head = job;
  queue_tail = job;
  int start = !queue_worker;
  queue_worker = 1;
  pthread_mutex_unlock(&queue_lock);
  mx_task *task;
  if (start && mx_task_start(drain, NULL, NULL, &task) == MX_OK) mx_task_detach(task);
  else if (start) { /* no engine thread: the queued tapes stay on the interpreter */
    pthread_mutex_lock(&queue_lock);
    jit_job *q = queue_head;
    queue_head = queue_tail = NULL;
    queue_worker = 0;
    pthread_mutex_unlock(&queue_lock);
    while (q) {
      jit_job *next = q->next;
      finish(q->jit, NULL, "could not start the compile thread");
      job_free(q);
      q = next;
    }
  }
  return MX_OK;
}
