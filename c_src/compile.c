/* compile.c: tapes. mx_tape_capture walks the graph between a compiled
 * function's placeholders and its outputs once: parameter-free subgraphs are
 * evaluated there and become constants, duplicate nodes (same op, params and
 * inputs) and equal small constants are merged, stop_gradient and identity
 * reshapes become aliases, exact algebraic no-ops (x * 1, -(-x), ...) are
 * lowered away and dead instructions dropped; what is left is laid out as
 * straight-line instructions over node structs allocated with the tape.
 *
 * The replay plan, made once at capture: runs of elementwise instructions of one
 * shape form fusion groups (ops.def's MX_FUSE marks) replayed block by block, with
 * values read only inside a group kept in L1-sized scratch blocks; every other
 * intermediate gets an offset in one arena per replay context (reused after its
 * last reader, in place where an elementwise result can take a dying input's
 * memory); elementwise kernels are prepared (kernels.h mx_ew) so a replay calls
 * their loops directly, and f64/bool ones over arrays and one-element inputs (a gradient's
 * scalars and short vectors) run loops of their own, one call each (the fast path). A replay binds the call's inputs and outputs and runs:
 * no allocation but the outputs handed back, no lock, no refcounting. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mx.h"
#include "prim/elementwise.h"
#include "prim/kernels.h"
#include "prim/special.h"

/* ---- placeholders ---------------------------------------------------------------- */

mx_status mx_placeholder(mx_dtype t, int ndim, const int64_t *shape, mx_array **out) {
  if ((unsigned)t >= MX_DTYPE_COUNT) return mx_error(MX_EINVAL, "[placeholder] unknown dtype %d", (int)t);
  mx_status st = mx_node_new(MX_OP_PLACEHOLDER, t, ndim, shape, 0, NULL, NULL, out);
  if (!st) (*out)->cost = 0;
  return st;
}

mx_status mx_k_placeholder(mx_array *out, mx_array *const *in) {
  (void)in;
  char d[128];
  return mx_error(MX_EINVAL,
                  "[compile] the compiled function's input %s needs a value while tracing (to_number/to_list or "
                  "control flow on an array); use Mx.where, or compile(..., fallback: true)",
                  mx_describe(out, d, sizeof d));
}

/* ---- tapes ------------------------------------------------------------------------- */

/* ops.def's fusion marks: E elementwise, R a reduction that may end a group. */
enum { FUSE_NO, FUSE_E, FUSE_R };
static const int8_t fuse_kind[MX_OP_COUNT] = {
#define MX_OP(id, name, family, rule, kernel, vjp, jvp, batch)
#define MX_FUSE(id, kind) [MX_OP_##id] = FUSE_##kind,
#include "ops.def"
#undef MX_FUSE
#undef MX_OP
};

/* How a replay runs instruction k. */
enum { K_KERNEL, K_EW, K_ALIAS, K_GROUP, K_MEMBER };
/* Where a slot's data lives during a replay (its root's): the call's inputs, the tape's
 * constants, the outputs handed back, the context's arena, or a fused group's scratch block. */
enum { S_INPUT, S_CONST, S_OUT, S_ARENA, S_SCRATCH };

#define BLOCK 2048                 /* elements of a fused group's block */
#define SCRATCH_BYTES (BLOCK * 16) /* one scratch block holds any dtype's block */
#define CHECK_COST 100000          /* cost units (~10 us) between cancellation and deadline checks */

/* The small-array fast path: an elementwise instruction on f64 (or bool) whose inputs each have
 * the output's size or one element runs a loop of its own here, chosen at capture for its op and
 * which inputs are one element, instead of its prepared kernel's bind and range calls (~3
 * indirect calls and the kernel's dispatch an instruction, which dominate at the 1-10 elements
 * of a gradient tape). Same expressions (elementwise.h), so the same bits. cls: FAST_* (0:
 * none). FAST_SUM: a sum of a whole f64 array to one element, by reduce.c's fold itself. */
enum { FAST_NONE, FAST_F64_UNARY, FAST_F64_BOOL1, FAST_F64_BINARY, FAST_F64_CMP, FAST_BOOL_CMP, FAST_SELECT64, FAST_SUM };
/* Computes positions [lo, hi) of dst from src (each indexed by position; one-element inputs at 0). */
typedef void (*fast_fn)(char *dst, const char *const *src, int64_t lo, int64_t hi);
typedef struct {
  fast_fn fn; /* NULL for FAST_SUM */
  uint8_t cls;
} fast_op;

typedef struct {
  int32_t first, count; /* instructions [first, first + count) */
  int32_t n_scratch;    /* scratch blocks its unstored members need */
  int64_t n_blocks, grain; /* blocks of the domain; blocks per chunk across cores */
} fgroup;

/* A fused group's member as its block loop reads it (one cache line). */
typedef struct {
  mx_range_fn range; /* NULL: the trailing reduction */
  void (*bind)(void *ctx, char *dst, const char *const *src);
  int32_t out, in[3];          /* slots */
  int32_t out_scr, in_scr[3];  /* byte offsets of their scratch blocks, -1 when stored */
  int8_t nin, out_esz, in_esz[3];
  fast_op fast;
} member;

typedef struct {
  mx_array *slots;  /* this replay's node structs (a copy of the tape's) */
  mx_array **ptrs;  /* instruction inputs: ptrs[in_off[k] ..] point into slots */
  mx_buffer *hdr;   /* per slot: a header over arena or caller memory (never allocated or freed) */
  char **data;      /* per slot: where its elements are during this replay (stored slots) */
  mx_buffer *arena; /* every planned intermediate, allocated once per context */
  void **ew;        /* per instruction: this context's copy of its prepared loop */
  char *ewmem;
  char *scratch;    /* fused groups' blocks */
  /* the native tier (jit.c) */
  void **P;               /* per slot: its data as generated code and its callbacks see it */
  void **O;               /* per output: where generated code writes it */
  mx_buffer **owned;      /* per instruction: buffers a callback had to allocate, freed after the call */
  int n_owned;
  char *jscratch;         /* generated code's arena, kept between replays */
  size_t jscratch_bytes;
} replay_ctx;

struct mx_tape {
  _Atomic int32_t refs;
  int n_in, n_out, n_const, n_ins, n_slots;
  mx_array *slots;   /* inputs [0, n_in), then constants and instructions; constants hold their buffers */
  mx_params *params; /* one per slot; slots[s].params points here when the node has params */
  int32_t *ins_slot; /* instruction k computes slots[ins_slot[k]] ... */
  int32_t *in_off;   /* ... from slots in_idx[in_off[k] .. in_off[k + 1]) */
  int32_t *in_idx;
  int32_t *out_slot;
  uint8_t *is_const; /* per slot */
  int folded, merged, deep, noops, dead, n_groups, fused;
  int64_t cost, bytes;
  /* the replay plan */
  int8_t *kind;       /* per instruction: K_* */
  int32_t *group_of;  /* per instruction: its fused group, -1 if none */
  fgroup *groups;
  int32_t *scratch_of; /* per slot: its scratch block in its group, -1 when stored */
  int32_t *root;      /* per slot: the slot whose storage it shares (reshape, stop_gradient) */
  int8_t *store;      /* per slot: S_* of its root */
  int64_t *offset;    /* per slot: byte offset in the arena (S_ARENA) */
  int64_t arena_bytes;
  int32_t max_scratch;
  mx_ew *ew;          /* per instruction: its prepared loop (range NULL: call the kernel) */
  fast_op *fast;      /* per instruction: its inline loop (cls FAST_NONE: use ew) */
  int n_fast;
  size_t ew_bytes;
  int32_t *ins_cost;  /* per instruction: its estimated cost, capped */
  uint8_t *out_owner; /* per output: the first output on an S_OUT root (gets the memory) */
  int8_t *esz;        /* per slot: element bytes */
  int32_t *io;        /* slots bound per replay (S_INPUT and S_OUT roots, then their aliases) */
  int n_io;
  member *members;    /* per instruction in a group */
  int32_t *steps;     /* what a replay runs: instructions, a group by its first; no aliases */
  int32_t *step_cost;
  int n_steps;
  _Atomic(replay_ctx *) spare; /* one replay's context kept for the next */
  _Atomic(mx_jit *) jit;        /* the generated-C tier (jit.c); NULL: interpreter only */
};

static _Atomic int64_t tapes_live, tapes_bytes;

_Thread_local mx_ew *mx_ew_capture;

mx_status mx_ew_keep(const void *ctx, size_t size, mx_range_fn range, void (*bind)(void *, char *, const char *const *),
                     int64_t grain) {
  void *copy = malloc(size);
  if (!copy) return mx_error(MX_ENOMEM, "[compile] out of memory preparing a kernel");
  memcpy(copy, ctx, size);
  *mx_ew_capture = (mx_ew){range, bind, copy, size, grain};
  return MX_OK;
}

void mx_tape_totals(int64_t *count, int64_t *bytes) {
  *count = atomic_load(&tapes_live);
  *bytes = atomic_load(&tapes_bytes);
}

static void ctx_free(replay_ctx *c) {
  if (!c) return;
  free(c->slots);
  free(c->ptrs);
  free(c->hdr);
  free(c->data);
  mx_buffer_release(c->arena);
  free(c->ew);
  free(c->ewmem);
  free(c->scratch);
  free(c->P);
  free(c->O);
  free(c->owned);
  free(c->jscratch);
  free(c);
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static replay_ctx *ctx_new(const mx_tape *t) {
  replay_ctx *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  size_t ns = (size_t)(t->n_slots ? t->n_slots : 1), ni = (size_t)(t->n_ins ? t->n_ins : 1);
  int n_ptrs = t->in_off[t->n_ins];
  c->slots = malloc(sizeof(mx_array) * ns);
  c->ptrs = malloc(sizeof(mx_array *) * (size_t)(n_ptrs ? n_ptrs : 1));
  c->hdr = calloc(ns, sizeof(mx_buffer));
  c->data = calloc(ns, sizeof(char *));
  c->ew = calloc(ni, sizeof(void *));
  c->ewmem = t->ew_bytes ? aligned_alloc(64, t->ew_bytes) : NULL;
  c->scratch = t->max_scratch ? aligned_alloc(64, (size_t)t->max_scratch * SCRATCH_BYTES) : NULL;
  c->P = calloc(ns, sizeof(void *));
  c->O = calloc((size_t)(t->n_out ? t->n_out : 1), sizeof(void *));
  c->owned = calloc(ni, sizeof(mx_buffer *));
  if (!c->P || !c->O || !c->owned || !c->slots || !c->ptrs || !c->hdr || !c->data || !c->ew || (t->ew_bytes && !c->ewmem) || (t->max_scratch && !c->scratch) ||
      (t->arena_bytes && mx_buffer_alloc((size_t)t->arena_bytes, &c->arena))) {
    ctx_free(c);
    return NULL;
  }
  memcpy(c->slots, t->slots, sizeof(mx_array) * (size_t)t->n_slots);
  for (int i = 0; i < n_ptrs; i++) c->ptrs[i] = &c->slots[t->in_idx[i]];
  for (int s = 0; s < t->n_slots; s++) {
    if (t->is_const[s]) c->P[s] = mx_data(&t->slots[s]);
    atomic_init(&c->hdr[s].refs, 1);
    if (t->store[s] == S_ARENA) {
      c->hdr[s].data = (char *)c->arena->data + t->offset[t->root[s]];
      c->hdr[s].nbytes = c->hdr[s].capacity = mx_nbytes(&t->slots[s]);
      c->slots[s].buf = &c->hdr[s];
    } else if (t->store[s] == S_CONST) {
      c->slots[s].buf = t->slots[t->root[s]].buf;
    }
    c->data[s] = c->slots[s].buf ? c->slots[s].buf->data : NULL;
  }
  size_t at = 0;
  for (int k = 0; k < t->n_ins; k++)
    if (t->ew[k].range) {
      c->ew[k] = c->ewmem + at;
      memcpy(c->ew[k], t->ew[k].ctx, t->ew[k].ctx_size);
      at += align64(t->ew[k].ctx_size);
    }
  return c;
}

void mx_tape_retain(mx_tape *t) { atomic_fetch_add(&t->refs, 1); }

void mx_tape_release(mx_tape *t) {
  if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
  for (int s = 0; s < t->n_slots; s++)
    if (t->is_const && t->is_const[s]) mx_buffer_release(t->slots[s].buf);
  ctx_free(atomic_load(&t->spare));
  mx_jit_free(atomic_load(&t->jit));
  if (t->ew)
    for (int k = 0; k < t->n_ins; k++) free(t->ew[k].ctx);
  free(t->slots);
  free(t->params);
  free(t->ins_slot);
  free(t->in_off);
  free(t->in_idx);
  free(t->out_slot);
  free(t->is_const);
  free(t->kind);
  free(t->group_of);
  free(t->groups);
  free(t->scratch_of);
  free(t->root);
  free(t->store);
  free(t->offset);
  free(t->ew);
  free(t->fast);
  free(t->ins_cost);
  free(t->out_owner);
  free(t->esz);
  free(t->io);
  free(t->members);
  free(t->steps);
  free(t->step_cost);
  atomic_fetch_sub(&tapes_live, 1);
  atomic_fetch_sub(&tapes_bytes, t->bytes);
  free(t);
}

void mx_tape_info_get(const mx_tape *t, mx_tape_info *info) {
  *info = (mx_tape_info){t->n_in,  t->n_out, t->n_ins,      t->n_const,  t->folded, t->merged,
                         t->deep,  t->cost,  t->bytes,      t->noops,    t->dead,   t->n_groups,
                         t->fused, t->arena_bytes, t->n_fast};
}

mx_op mx_tape_instruction_op(const mx_tape *t, int k) {
  return k >= 0 && k < t->n_ins ? (mx_op)t->slots[t->ins_slot[k]].op : MX_OP_COUNT;
}

int mx_tape_instruction_group(const mx_tape *t, int k) { return k >= 0 && k < t->n_ins ? t->group_of[k] : -1; }

int mx_tape_instruction_fast(const mx_tape *t, int k) { return k >= 0 && k < t->n_ins && t->fast[k].cls != FAST_NONE; }

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int same_shape(int nd, const int64_t *a, int nd2, const int64_t *b) {
  return nd == nd2 && (nd == 0 || !memcmp(a, b, sizeof(int64_t) * (size_t)nd));
}

/* p moved back by lo elements of size sz, so that a range's position lo lands on p
 * (scratch blocks hold positions [lo, hi) of a whole array); through integers, not
 * pointer arithmetic outside the block. */
static char *rebase(const void *p, int64_t lo, size_t sz) { return (char *)((uintptr_t)p - (uintptr_t)lo * sz); }

/* ---- the small-array fast path ------------------------------------------------------ */

/* The f64 unary ops the fast path runs: SAME_OPS and FLOAT_UNARY_OPS (float expressions),
 * then BOOL_OPS (f64 in, bool out); recognised by their kernel. */
#define FU_SAME(name, ID, T, iexpr, fexpr) FU_##name,
#define FU_FLOAT(name, f32, f64) FU_##name,
#define FU_BOOL(name, ID, T, iexpr, fexpr) FB_##name,
enum { SAME_OPS(FU_SAME, _, _) FLOAT_UNARY_OPS(FU_FLOAT) N_FU, BOOL_OPS(FU_BOOL, _, _) N_FAST_UNARY };
#undef FU_SAME
#undef FU_FLOAT
#undef FU_BOOL
#define FK_SAME(name, ID, T, iexpr, fexpr) [FU_##name] = mx_k_##name,
#define FK_FLOAT(name, f32, f64) [FU_##name] = mx_k_##name,
#define FK_BOOL(name, ID, T, iexpr, fexpr) [FB_##name] = mx_k_##name,
static mx_status (*const unary_kernels[N_FAST_UNARY])(mx_array *, mx_array *const *) = {
    SAME_OPS(FK_SAME, _, _) FLOAT_UNARY_OPS(FK_FLOAT) BOOL_OPS(FK_BOOL, _, _)};
#undef FK_SAME
#undef FK_FLOAT
#undef FK_BOOL

/* The loops: one function per op and pattern of one-element inputs (bit i: input i), so a
 * replay makes one call an instruction and each loop is as simple as the kernels' rows.
 * ZERO makes the loop over two arrays. Where both operands of add or multiply are NaN, x86
 * returns the one gcc happens to put first, which it chooses per loop; binary.c's rows over two
 * arrays give b's, so these loops say so (b op b quiets b) instead of leaving it to gcc
 * (compile_test checks the NaN bits of every op and pattern against the kernels). */
#define FAST_ZERO_PLAIN(NAME, TI, TO, EXPR)                                                            \
  static void NAME##_0(char *dst, const char *const *src, int64_t lo, int64_t hi) {                  \
    const TI *pa = (const TI *)src[0], *pb = (const TI *)src[1];                                       \
    TO *o = (TO *)dst;                                                                                 \
    for (int64_t i = lo; i < hi; i++) {                                                                \
      TI a = pa[i], b = pb[i];                                                                         \
      o[i] = (TO)(EXPR);                                                                               \
    }                                                                                                  \
  }
/* f64 add and multiply over two arrays: b op b (b quieted) where b is NaN, else a op b; two
 * elements at a time on gcc vectors with a bit mask, as gcc will not vectorize the select. */
typedef double fast_v2d __attribute__((vector_size(16)));
typedef long long fast_v2l __attribute__((vector_size(16)));
#define FAST_ZERO_NAN_B(NAME, TI, TO, EXPR)                                                            \
  static void NAME##_0(char *dst, const char *const *src, int64_t lo, int64_t hi) {                  \
    const double *pa = (const double *)src[0], *pb = (const double *)src[1];                           \
    double *o = (double *)dst;                                                                         \
    int64_t i = lo;                                                                                    \
    for (; i + 2 <= hi; i += 2) {                                                                      \
      fast_v2d a, b, r, q;                                                                             \
      memcpy(&a, pa + i, sizeof a);                                                                    \
      memcpy(&b, pb + i, sizeof b);                                                                    \
      r = (EXPR);                                                                                      \
      {                                                                                                \
        fast_v2d a = b; /* EXPR of (b, b) */                                                           \
        q = (EXPR);                                                                                    \
      }                                                                                                \
      fast_v2l nan_b = (fast_v2l)(b != b), bits = (nan_b & (fast_v2l)q) | (~nan_b & (fast_v2l)r);      \
      memcpy(o + i, &bits, sizeof bits);                                                               \
    }                                                                                                  \
    for (; i < hi; i++) {                                                                              \
      double a = pa[i], b = pb[i], r = (EXPR);                                                         \
      if (b != b) {                                                                                    \
        double a = b;                                                                                  \
        r = (EXPR);                                                                                    \
      }                                                                                                \
      o[i] = r;                                                                                        \
    }                                                                                                  \
  }
#define FAST_BIN_FNS(NAME, TI, TO, EXPR, ZERO)                                                         \
  ZERO(NAME, TI, TO, EXPR)                                                                             \
  static void NAME##_1(char *dst, const char *const *src, int64_t lo, int64_t hi) {                  \
    const TI a = *(const TI *)src[0], *pb = (const TI *)src[1];                                        \
    TO *o = (TO *)dst;                                                                                 \
    for (int64_t i = lo; i < hi; i++) {                                                                \
      TI b = pb[i];                                                                                    \
      o[i] = (TO)(EXPR);                                                                               \
    }                                                                                                  \
  }                                                                                                    \
  static void NAME##_2(char *dst, const char *const *src, int64_t lo, int64_t hi) {                  \
    const TI *pa = (const TI *)src[0], b = *(const TI *)src[1];                                        \
    TO *o = (TO *)dst;                                                                                 \
    for (int64_t i = lo; i < hi; i++) {                                                                \
      TI a = pa[i];                                                                                    \
      o[i] = (TO)(EXPR);                                                                               \
    }                                                                                                  \
  }                                                                                                    \
  static void NAME##_3(char *dst, const char *const *src, int64_t lo, int64_t hi) {                  \
    const TI a = *(const TI *)src[0], b = *(const TI *)src[1];                                         \
    const TO v = (TO)(EXPR);                                                                           \
    for (int64_t i = lo; i < hi; i++) ((TO *)dst)[i] = v;                                              \
  }
#define FAST_BIN_ROW(NAME) {NAME##_0, NAME##_1, NAME##_2, NAME##_3}

#define ZERO_ADD FAST_ZERO_NAN_B
#define ZERO_MULTIPLY FAST_ZERO_NAN_B
#define ZERO_SUBTRACT FAST_ZERO_PLAIN
#define ZERO_DIVIDE FAST_ZERO_PLAIN
#define ZERO_POW FAST_ZERO_PLAIN
#define ZERO_MAX FAST_ZERO_PLAIN
#define ZERO_MIN FAST_ZERO_PLAIN
#define ZERO_REMAINDER FAST_ZERO_PLAIN
#define FL_ARITH(OP, name, iexpr, fexpr) FAST_BIN_FNS(fb_##name, double, double, fexpr, ZERO_##OP)
#define FL_FLOAT(OP, name, fexpr) FAST_BIN_FNS(fb_##name, double, double, fexpr, FAST_ZERO_PLAIN)
#define FL_CMP(OP, name, expr)                                                     \
  FAST_BIN_FNS(fc_##name, double, uint8_t, expr, FAST_ZERO_PLAIN)                  \
  FAST_BIN_FNS(fcb_##name, uint8_t, uint8_t, expr, FAST_ZERO_PLAIN)
ARITH_OPS(FL_ARITH)
FLOAT_OPS(FL_FLOAT)
CMP_OPS(FL_CMP)
#undef FL_ARITH
#undef FL_FLOAT
#undef FL_CMP
#define FT_ARITH(OP, name, iexpr, fexpr) [MX_OP_##OP] = FAST_BIN_ROW(fb_##name),
#define FT_FLOAT(OP, name, fexpr) [MX_OP_##OP] = FAST_BIN_ROW(fb_##name),
static const fast_fn f64_binary_fns[MX_OP_COUNT][4] = {ARITH_OPS(FT_ARITH) FLOAT_OPS(FT_FLOAT)};
#undef FT_ARITH
#undef FT_FLOAT
#define FT_CMP(OP, name, expr) [MX_OP_##OP] = FAST_BIN_ROW(fc_##name),
static const fast_fn f64_cmp_fns[MX_OP_COUNT][4] = {CMP_OPS(FT_CMP)};
#undef FT_CMP
#define FT_CMP(OP, name, expr) [MX_OP_##OP] = FAST_BIN_ROW(fcb_##name),
static const fast_fn bool_cmp_fns[MX_OP_COUNT][4] = {CMP_OPS(FT_CMP)};
#undef FT_CMP

#define FAST_UN_FN(NAME, TO, EXPR)                                                  \
  static void NAME(char *dst, const char *const *src, int64_t lo, int64_t hi) {    \
    const double *pa = (const double *)src[0];                                      \
    TO *o = (TO *)dst;                                                              \
    for (int64_t i = lo; i < hi; i++) {                                             \
      double x = pa[i];                                                             \
      (void)x;                                                                      \
      o[i] = (TO)(EXPR);                                                            \
    }                                                                               \
  }
#define FL_SAME(name, ID, T, iexpr, fexpr) FAST_UN_FN(fu_##name, double, fexpr)
#define FL_UFLOAT(name, f32, f64) FAST_UN_FN(fu_##name, double, f64)
#define FL_BOOL(name, ID, T, iexpr, fexpr) FAST_UN_FN(fu_##name, uint8_t, fexpr)
SAME_OPS(FL_SAME, _, _)
FLOAT_UNARY_OPS(FL_UFLOAT)
BOOL_OPS(FL_BOOL, _, _)
#undef FL_SAME
#undef FL_UFLOAT
#undef FL_BOOL
#define FT_SAME(name, ID, T, iexpr, fexpr) [FU_##name] = fu_##name,
#define FT_UFLOAT(name, f32, f64) [FU_##name] = fu_##name,
#define FT_BOOL(name, ID, T, iexpr, fexpr) [FB_##name] = fu_##name,
static const fast_fn unary_fns[N_FAST_UNARY] = {SAME_OPS(FT_SAME, _, _) FLOAT_UNARY_OPS(FT_UFLOAT) BOOL_OPS(FT_BOOL, _, _)};
#undef FT_SAME
#undef FT_UFLOAT
#undef FT_BOOL

/* select on bool, 8-byte values copied as bits. An elementwise predicate (SP 1) reads each
 * position; one predicate (SP 0) copies, or fills from, the branch it picks. */
#define FAST_SEL_FN(SP, SA, SB)                                                                       \
  static void fs_##SP##SA##SB(char *dst, const char *const *src, int64_t lo, int64_t hi) {           \
    const uint8_t *p = (const uint8_t *)src[0];                                                        \
    const uint64_t *a = (const uint64_t *)src[1], *b = (const uint64_t *)src[2];                       \
    uint64_t *o = (uint64_t *)dst;                                                                     \
    if (!SP) {                                                                                         \
      const uint64_t *v = SELECT_EXPR(p[0], a, b);                                                     \
      if (SELECT_EXPR(p[0], SA, SB))                                                                   \
        memmove(o + lo, v + lo, sizeof *o * (size_t)(hi - lo)); /* o may be v (in place) */             \
      else                                                                                             \
        for (int64_t i = lo; i < hi; i++) o[i] = v[0];                                                 \
      return;                                                                                          \
    }                                                                                                  \
    for (int64_t i = lo; i < hi; i++) o[i] = SELECT_EXPR(p[i], a[i * SA], b[i * SB]);                  \
  }
FAST_SEL_FN(0, 0, 0)
FAST_SEL_FN(0, 0, 1)
FAST_SEL_FN(0, 1, 0)
FAST_SEL_FN(0, 1, 1)
FAST_SEL_FN(1, 0, 0)
FAST_SEL_FN(1, 0, 1)
FAST_SEL_FN(1, 1, 0)
FAST_SEL_FN(1, 1, 1)
/* indexed by the one-element bits (1: predicate, 2: a, 4: b) */
static const fast_fn select_fns[8] = {fs_111, fs_011, fs_101, fs_001, fs_110, fs_010, fs_100, fs_000};

/* Instruction k's fast loop, if it has one (its prepared kernel has validated it). */
static fast_op fast_of(const mx_tape *t, int k) {
  fast_op f = {NULL, FAST_NONE};
  int scalar = 0; /* bit i: input i is one element read for every position */
  const mx_array *x = &t->slots[t->ins_slot[k]];
  int n = t->in_off[k + 1] - t->in_off[k];
  if (x->op == MX_OP_SUM && n == 1) { /* out of one element: every kept axis has length 1 */
    const mx_array *a = &t->slots[t->in_idx[t->in_off[k]]];
    if (a->dtype == MX_F64 && x->dtype == MX_F64 && x->size == 1 && a->size >= 1 && a->size <= BLOCK) f.cls = FAST_SUM;
    return f;
  }
  if (!t->ew[k].range || n < 1 || n > 3) return f;
  const mx_array *in[3];
  for (int i = 0; i < n; i++) {
    in[i] = &t->slots[t->in_idx[t->in_off[k] + i]];
    if (in[i]->size == x->size) continue;
    if (in[i]->size != 1) return f;
    scalar |= 1 << i;
  }
  if (x->size == 1) scalar = (1 << n) - 1; /* binary.c computes one element apart (its NaN order too) */
  mx_dtype o = (mx_dtype)x->dtype, a = (mx_dtype)in[0]->dtype, b = n > 1 ? (mx_dtype)in[1]->dtype : a;
  mx_op op = (mx_op)x->op;
  if (n == 1) {
    for (int u = 0; u < N_FAST_UNARY; u++)
      if (u != N_FU && mx_ops[op].kernel == unary_kernels[u] && a == MX_F64 && o == (u < N_FU ? MX_F64 : MX_BOOL))
        f.cls = u < N_FU ? FAST_F64_UNARY : FAST_F64_BOOL1, f.fn = unary_fns[u];
    return f;
  }
  switch (op) {
#define FC_ARITH(OP, name, iexpr, fexpr) case MX_OP_##OP:
#define FC_FLOAT(OP, name, fexpr) case MX_OP_##OP:
    ARITH_OPS(FC_ARITH)
    FLOAT_OPS(FC_FLOAT)
    if (n == 2 && a == MX_F64 && b == MX_F64 && o == MX_F64) f.cls = FAST_F64_BINARY, f.fn = f64_binary_fns[op][scalar];
    break;
#define FC_CMP(OP, name, expr) case MX_OP_##OP:
    CMP_OPS(FC_CMP)
    if (n == 2 && a == b && o == MX_BOOL && (a == MX_F64 || a == MX_BOOL)) {
      f.cls = a == MX_F64 ? FAST_F64_CMP : FAST_BOOL_CMP;
      f.fn = a == MX_F64 ? f64_cmp_fns[op][scalar] : bool_cmp_fns[op][scalar];
    }
    break;
#undef FC_ARITH
#undef FC_FLOAT
#undef FC_CMP
    case MX_OP_SELECT:
      if (n == 3 && a == MX_BOOL && mx_dtype_size(o) == 8) f.cls = FAST_SELECT64, f.fn = select_fns[scalar];
      break;
    default: break;
  }
  return f;
}

/* Member m of group g over positions [lo, hi) of a block (ew: the group's loop copies). */
static mx_status group_members(const mx_tape *t, const replay_ctx *c, const fgroup *g, int m, void *const *ew,
                               char *scratch, int64_t lo, int64_t hi) {
  const member *d = &t->members[g->first + m];
  mx_array *o = &c->slots[d->out];
  if (d->fast.cls == FAST_SUM) {
    const char *a = d->in_scr[0] >= 0 ? scratch + d->in_scr[0] : c->data[d->in[0]];
    *(double *)c->data[d->out] = mx_sum_f64((const double *)a, c->slots[d->in[0]].size);
    return MX_OK;
  }
  if (!d->range) { /* the trailing reduction: the group is one block, its input in scratch */
    mx_array view = c->slots[d->in[0]], *vp = &view;
    mx_buffer hb = {.data = d->in_scr[0] >= 0 ? scratch + d->in_scr[0] : c->data[d->in[0]]};
    view.buf = &hb;
    return mx_ops[o->op].kernel(o, &vp);
  }
  char *dst = d->out_scr >= 0 ? rebase(scratch + d->out_scr, lo, (size_t)d->out_esz) : c->data[d->out];
  const char *src[3] = {0, 0, 0};
  for (int i = 0; i < d->nin; i++)
    src[i] = d->in_scr[i] >= 0 ? rebase(scratch + d->in_scr[i], lo, (size_t)d->in_esz[i]) : c->data[d->in[i]];
  if (d->fast.fn) {
    d->fast.fn(dst, src, lo, hi);
    return MX_OK;
  }
  d->bind(ew[m], dst, src);
  d->range(ew[m], lo, hi);
  return MX_OK;
}

/* One block range [blo, bhi) of group g: each member over each block, in order. */
static mx_status group_blocks(const mx_tape *t, const replay_ctx *c, const fgroup *g, void *const *ew, char *scratch,
                              int64_t blo, int64_t bhi, int check) {
  const int64_t n = c->slots[t->members[g->first].out].size;
  for (int64_t b = blo; b < bhi; b++) {
    if (check && (b & 15) == 15 && mx_cancelled()) return MX_OK; /* the replay reports it */
    int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
    for (int m = 0; m < g->count; m++) {
      mx_status st = group_members(t, c, g, m, ew, scratch, lo, hi);
      if (st) return st;
    }
  }
  return MX_OK;
}

/* A one-block group (a gradient's scalars and short vectors): its fast members without the
 * block loop's rebasing; the others as group_blocks runs them. */
static mx_status group_one(const mx_tape *t, const replay_ctx *c, const fgroup *g) {
  const member *ms = t->members + g->first;
  const int64_t n = c->slots[ms[0].out].size;
  char *scratch = c->scratch;
  for (int m = 0; m < g->count; m++) {
    const member *d = &ms[m];
    if (!d->fast.fn) {
      mx_status st = group_members(t, c, g, m, c->ew + g->first, scratch, 0, n);
      if (st) return st;
      continue;
    }
    const char *src[3] = {0, 0, 0};
    for (int i = 0; i < d->nin; i++) src[i] = d->in_scr[i] >= 0 ? scratch + d->in_scr[i] : c->data[d->in[i]];
    d->fast.fn(d->out_scr >= 0 ? scratch + d->out_scr : c->data[d->out], src, 0, n);
  }
  return MX_OK;
}

typedef struct {
  const mx_tape *t;
  const replay_ctx *c;
  const fgroup *g;
  _Atomic int failed; /* a chunk could not get its workspace */
} group_job;

/* A chunk of blocks on a pool thread: its own copies of the members' loops and its own scratch. */
static void group_chunk(void *vjob, int64_t blo, int64_t bhi) {
  group_job *j = vjob;
  const mx_tape *t = j->t;
  const fgroup *g = j->g;
  size_t bytes = (size_t)g->n_scratch * SCRATCH_BYTES;
  for (int m = 0; m < g->count; m++) bytes += align64(t->ew[g->first + m].ctx_size);
  char *mem = aligned_alloc(64, align64(bytes ? bytes : 64));
  void *ew_local[64];
  if (!mem || g->count > 64) {
    free(mem);
    atomic_store(&j->failed, 1);
    return;
  }
  char *at = mem + (size_t)g->n_scratch * SCRATCH_BYTES;
  for (int m = 0; m < g->count; m++) {
    ew_local[m] = at;
    memcpy(at, t->ew[g->first + m].ctx, t->ew[g->first + m].ctx_size);
    at += align64(t->ew[g->first + m].ctx_size);
  }
  if (group_blocks(t, j->c, g, ew_local, mem, blo, bhi, 0)) atomic_store(&j->failed, 1); /* not reached: reductions join one-block groups only */
  free(mem);
}

static mx_status run_group(const mx_tape *t, replay_ctx *c, const fgroup *g) {
  if (g->n_blocks == 1) return group_one(t, c, g);
  if (g->n_blocks >= 2 * g->grain && mx_num_threads() > 1) {
    group_job j = {t, c, g, 0};
    mx_parallel_for(g->n_blocks, g->grain, group_chunk, &j);
    if (atomic_load(&j.failed)) return mx_error(MX_ENOMEM, "[compile] out of memory running a fused group");
    return MX_OK;
  }
  return group_blocks(t, c, g, c->ew + g->first, c->scratch, 0, g->n_blocks, 1);
}

static mx_status run_ew(const mx_tape *t, replay_ctx *c, int k) {
  const mx_ew *e = &t->ew[k];
  const int64_t n = t->slots[t->ins_slot[k]].size;
  const char *src[3] = {0, 0, 0};
  for (int i = 0; i < t->in_off[k + 1] - t->in_off[k]; i++) src[i] = c->data[t->in_idx[t->in_off[k] + i]];
  if (t->fast[k].fn && n < 2 * e->grain) {
    t->fast[k].fn(c->data[t->ins_slot[k]], src, 0, n);
    return MX_OK;
  }
  e->bind(c->ew[k], c->data[t->ins_slot[k]], src);
  if (n >= 2 * e->grain)
    mx_parallel_for(n, e->grain, e->range, c->ew[k]);
  else
    e->range(c->ew[k], 0, n);
  return MX_OK;
}

/* Runs t's instructions on c's slots (inputs and outputs bound); deadline 0: none. */
static mx_status replay(const mx_tape *t, replay_ctx *c, int64_t deadline) {
  mx_status st = MX_OK;
  int64_t since = 0;
  for (int i = 0; i < t->n_steps && !st; i++) {
    int k = t->steps[i];
    switch (t->kind[k]) {
      case K_EW: st = run_ew(t, c, k); break;
      case K_GROUP: st = run_group(t, c, &t->groups[t->group_of[k]]); break;
      default:
        if (t->fast[k].cls == FAST_SUM) {
          int a = t->in_idx[t->in_off[k]];
          *(double *)c->data[t->ins_slot[k]] = mx_sum_f64((const double *)c->data[a], c->slots[a].size);
          break;
        } st = mx_ops[t->slots[t->ins_slot[k]].op].kernel(&c->slots[t->ins_slot[k]], c->ptrs + t->in_off[k]);
    }
    if ((since += t->step_cost[i]) > CHECK_COST) {
      since = 0;
      if (mx_cancelled()) return mx_error(MX_ECANCELLED, "[compile] cancelled: the calling process exited");
      if (deadline && now_ns() > deadline) return mx_error(MX_EYIELD, "[compile] out of time; run the tape again to go on");
    }
  }
  /* a kernel's chunks are skipped once cancelled: the results are incomplete */
  if (!st && mx_cancelled()) st = mx_error(MX_ECANCELLED, "[compile] cancelled: the calling process exited");
  return st;
}

/* Points alias slots (reshape, stop_gradient) of inputs and outputs at their root's buffer. */
static void bind_aliases(const mx_tape *t, replay_ctx *c) {
  for (int i = 0; i < t->n_io; i++) {
    int s = t->io[i];
    if (t->root[s] != s) c->slots[s].buf = c->slots[t->root[s]].buf;
    c->data[s] = c->slots[s].buf->data;
  }
}

/* Drops what a replay holds (inputs' and outputs' references) and keeps c for the next
 * replay; a cancelled replay's context is freed (its task gives its memory back). */
static void ctx_done(mx_tape *t, replay_ctx *c, int owned, mx_status st) {
  for (int i = 0; i < t->n_io; i++) {
    int s = t->io[i];
    if (owned && t->root[s] == s) mx_buffer_release(c->slots[s].buf);
    c->slots[s].buf = NULL;
  }
  replay_ctx *none = NULL;
  if (st == MX_ECANCELLED || !atomic_compare_exchange_strong(&t->spare, &none, c)) ctx_free(c);
}

static replay_ctx *ctx_take(mx_tape *t) {
  replay_ctx *c = atomic_exchange(&t->spare, NULL);
  return c ? c : ctx_new(t);
}

/* ---- the native tier: generated C (jit.c) ------------------------------------------ */

typedef struct {
  const mx_tape *t;
  replay_ctx *c;
} native_ctx;

/* Runs instruction k's kernel for generated code (no rule in jit.c): its inputs are read
 * through c->P (generated code keeps its locals there), its output lands in c->P. */
static int native_call(void *vctx, int k) {
  native_ctx *n = vctx;
  const mx_tape *t = n->t;
  replay_ctx *c = n->c;
  int n_in = t->in_off[k + 1] - t->in_off[k];
  mx_array lv[8], *lp[8], *views = lv, **ptrs = lp;
  mx_buffer lb[8], *bufs = lb;
  if (n_in > 8) {
    views = malloc(sizeof(mx_array) * (size_t)n_in);
    ptrs = malloc(sizeof(mx_array *) * (size_t)n_in);
    bufs = malloc(sizeof(mx_buffer) * (size_t)n_in);
  }
  mx_status st = !views || !ptrs || !bufs ? mx_error(MX_ENOMEM, "[compile] out of memory in a native replay") : MX_OK;
  for (int j = 0; j < n_in && !st; j++) {
    int s = t->in_idx[t->in_off[k] + j];
    views[j] = c->slots[s];
    size_t nb = mx_nbytes(&c->slots[s]);
    bufs[j] = (mx_buffer){.nbytes = nb, .capacity = nb, .data = c->P[s]};
    atomic_init(&bufs[j].refs, 1 << 30); /* borrowed: never freed through the view */
    views[j].buf = &bufs[j];
    ptrs[j] = &views[j];
  }
  int s_out = t->ins_slot[k];
  mx_array *x = &c->slots[s_out];
  /* Output slots keep their buffers; arena offsets follow the interpreter's order, not the
   * generated code's, so an arena slot gets memory of its own for this run. */
  mx_buffer *planned = x->buf;
  if (t->store[s_out] == S_ARENA) x->buf = NULL;
  int had = x->buf != NULL;
  if (!st) st = mx_node_compute(x, ptrs);
  if (!st && !had) {
    c->owned[c->n_owned++] = x->buf;
    x->buf = NULL;
  }
  if (!had) x->buf = planned;
  if (!st) c->P[t->ins_slot[k]] = had ? mx_data(x) : c->owned[c->n_owned - 1]->data;
  if (n_in > 8) {
    free(views);
    free(ptrs);
    free(bufs);
  }
  return (int)st;
}

/* One native replay on c's bound inputs and outputs: out NULL writes each output into its
 * slot's buffer (mx_tape_run), else into out[j] (mx_tape_run_raw). */
static mx_status native_run(mx_tape *t, replay_ctx *c, mx_jit_fn fn, size_t scratch, void *const *out) {
  if (c->jscratch_bytes < scratch) {
    free(c->jscratch);
    c->jscratch_bytes = 0;
    if (!(c->jscratch = aligned_alloc(64, (scratch + 63) & ~(size_t)63)))
      return mx_error(MX_ENOMEM, "[compile] out of memory for the native tier's %zu-byte arena", scratch);
    c->jscratch_bytes = scratch;
  }
  if (mx_cancelled()) return mx_error(MX_ECANCELLED, "[compile] cancelled: the calling process exited");
  for (int i = 0; i < t->n_in; i++) c->P[i] = mx_data(&c->slots[i]);
  for (int j = 0; j < t->n_out; j++) c->O[j] = out ? out[j] : mx_data(&c->slots[t->out_slot[j]]);
  native_ctx n = {t, c};
  mx_status st = (mx_status)fn(c->P, c->O, mx_jit_host_table(), native_call, &n, c->jscratch);
  if (st == MX_ECANCELLED) /* generated code checks between long loops */
    st = mx_error(MX_ECANCELLED, "[compile] cancelled: the calling process exited");
  for (; c->n_owned > 0; c->n_owned--) mx_buffer_release(c->owned[c->n_owned - 1]);
  return st;
}

static mx_jit_fn native_fn(mx_tape *t, size_t *scratch) {
  mx_jit *jit = atomic_load_explicit(&t->jit, memory_order_acquire);
  return jit ? mx_jit_native(jit, scratch) : NULL;
}

mx_status mx_tape_run(mx_tape *t, mx_array *const *inputs, int n_in, int64_t budget_ns, mx_array **results) {
  char d1[128], d2[128];
  if (n_in != t->n_in)
    return mx_error(MX_EINVAL, "[compile] the tape takes %d inputs but %d were given", t->n_in, n_in);
  for (int i = 0; i < n_in; i++) {
    const mx_array *h = &t->slots[i], *x = inputs[i];
    if (x->dtype != h->dtype || !same_shape(x->ndim, x->shape, h->ndim, h->shape))
      return mx_error(MX_EINVAL, "[compile] input %d is %s but the tape was traced with %s", i,
                      mx_describe(x, d1, sizeof d1), mx_describe(h, d2, sizeof d2));
  }
  /* Pending inputs are evaluated first, as an eval of them would be. */
  mx_status st = MX_OK;
  for (int i = 0; i < n_in && !st; i++)
    if (!mx_is_ready(inputs[i])) st = mx_eval_budget(inputs, n_in, budget_ns);
  if (st) return st;

  replay_ctx *c = ctx_take(t);
  if (!c) return mx_error(MX_ENOMEM, "[compile] out of memory starting a replay");
  for (int i = 0; i < n_in && !st; i++) {
    c->slots[i].buf = mx_acquire_buffer(inputs[i]);
    if (!c->slots[i].buf) st = mx_error(MX_EDISPOSED, "[compile] input %d was disposed; it cannot be read", i);
  }
  /* Outputs get buffers of their own, handed over to the result arrays. */
  for (int i = 0; i < t->n_io && !st; i++) {
    int s = t->io[i];
    if (t->store[s] == S_OUT && t->root[s] == s) {
      st = mx_buffer_alloc(mx_nbytes(&t->slots[s]), &c->slots[s].buf);
      if (st) st = mx_error(st, "[compile] out of memory for an output of %s", mx_ops[t->slots[s].op].name);
    }
  }
  if (!st) {
    bind_aliases(t, c);
    size_t scratch;
    mx_jit_fn fn = native_fn(t, &scratch);
    st = fn ? native_run(t, c, fn, scratch, NULL) : replay(t, c, budget_ns > 0 ? now_ns() + budget_ns : 0);
  }
  int made = 0;
  for (; made < t->n_out && !st; made++) {
    const mx_array *o = &c->slots[t->out_slot[made]];
    st = mx_from_buffer((mx_dtype)o->dtype, o->ndim, o->shape, o->buf, &results[made]);
  }
  if (st)
    for (int i = 0; i < made; i++) mx_release(results[i]);
  ctx_done(t, c, 1, st);
  return st;
}

const mx_array *mx_tape_input(const mx_tape *t, int i) { return i >= 0 && i < t->n_in ? &t->slots[i] : NULL; }

const mx_array *mx_tape_output(const mx_tape *t, int j) {
  return j >= 0 && j < t->n_out ? &t->slots[t->out_slot[j]] : NULL;
}

mx_status mx_tape_run_raw(mx_tape *t, const void *const *in, void *const *out) {
  replay_ctx *c = ctx_take(t);
  if (!c) return mx_error(MX_ENOMEM, "[compile] out of memory starting a replay");
  /* The caller's memory is read and written in place: no copies, no allocation. */
  for (int i = 0; i < t->n_in; i++) {
    c->hdr[i].data = (void *)in[i];
    c->slots[i].buf = &c->hdr[i];
  }
  for (int j = 0; j < t->n_out; j++)
    if (t->out_owner[j]) {
      int r = t->root[t->out_slot[j]];
      c->hdr[r].data = out[j];
      c->slots[r].buf = &c->hdr[r];
    }
  bind_aliases(t, c);
  size_t scratch;
  mx_jit_fn fn = native_fn(t, &scratch);
  mx_status st = fn ? native_run(t, c, fn, scratch, out) : replay(t, c, 0);
  for (int j = 0; j < t->n_out && !st; j++)
    if (!t->out_owner[j]) {
      const mx_array *o = &c->slots[t->out_slot[j]];
      if (o->size) memcpy(out[j], o->buf->data, mx_nbytes(o));
    }
  ctx_done(t, c, 0, st);
  return st;
}

/* ---- capture ----------------------------------------------------------------------- */

enum { E_INPUT, E_CONST, E_NODE };

typedef struct {
  mx_array *node;  /* retained */
  mx_array **in;   /* retained copies of its inputs (E_NODE) */
  int n_in;
  int kind;
  int holder;      /* E_INPUT: which input */
  int depends;     /* reaches a placeholder */
  int slot;        /* -1 until emitted */
  mx_buffer *buf;  /* E_CONST: retained */
} entry;

typedef struct {
  entry *v;
  size_t n, cap;
  size_t *slots; /* open addressing over node pointers: index + 1, 0 = empty */
  size_t nslots;
  size_t *post;  /* entry indices, inputs before consumers */
  size_t npost;
} walk;

static size_t hash_ptr(const void *p, size_t nslots) { return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull & (nslots - 1); }

static int64_t find(const walk *w, const mx_array *a) {
  if (!w->nslots) return -1;
  for (size_t h = hash_ptr(a, w->nslots);; h = (h + 1) & (w->nslots - 1)) {
    if (!w->slots[h]) return -1;
    if (w->v[w->slots[h] - 1].node == a) return (int64_t)w->slots[h] - 1;
  }
}

static int rehash(walk *w, size_t nslots) {
  size_t *slots = calloc(nslots, sizeof *slots);
  if (!slots) return 0;
  for (size_t i = 0; i < w->n; i++) {
    size_t h = hash_ptr(w->v[i].node, nslots);
    while (slots[h]) h = (h + 1) & (nslots - 1);
    slots[h] = i + 1;
  }
  free(w->slots);
  w->slots = slots;
  w->nslots = nslots;
  return 1;
}

static int64_t add_entry(walk *w, mx_array *a) {
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 64;
    entry *v = realloc(w->v, cap * sizeof *v);
    if (v) w->v = v;
    size_t *post = realloc(w->post, cap * sizeof *post);
    if (post) w->post = post;
    if (!v || !post) return -1;
    w->cap = cap;
  }
  if (2 * (w->n + 1) > w->nslots && !rehash(w, w->nslots ? 2 * w->nslots : 128)) return -1;
  entry *e = &w->v[w->n];
  memset(e, 0, sizeof *e);
  e->slot = -1;
  mx_retain(a);
  e->node = a;
  size_t h = hash_ptr(a, w->nslots);
  while (w->slots[h]) h = (h + 1) & (w->nslots - 1);
  w->slots[h] = ++w->n;
  return (int64_t)w->n - 1;
}

static void walk_free(walk *w) {
  for (size_t i = 0; i < w->n; i++) {
    for (int j = 0; j < w->v[i].n_in; j++) mx_release(w->v[i].in[j]);
    free(w->v[i].in);
    mx_release(w->v[i].node);
    mx_buffer_release(w->v[i].buf);
  }
  free(w->v);
  free(w->slots);
  free(w->post);
}

/* Classifies e's node under the graph lock and copies a pending node's inputs. */
static mx_status classify(entry *e, mx_array *const *holders, int n_in) {
  mx_array *x = e->node;
  for (int i = 0; i < n_in; i++)
    if (holders[i] == x) {
      e->kind = E_INPUT;
      e->holder = i;
      e->depends = 1;
      return MX_OK;
    }
  mx_status st = MX_OK;
  mx_graph_lock();
  int state = atomic_load(&x->state);
  if (state == MX_DISPOSED) {
    st = mx_error(MX_EDISPOSED, "[compile] the function's result depends on a disposed array (%s)", mx_ops[x->op].name);
  } else if (state == MX_READY) {
    e->kind = E_CONST;
    e->buf = x->buf;
    if (e->buf) mx_buffer_retain(e->buf);
    else st = mx_error(MX_EDISPOSED, "[compile] an evaluated array the function uses has no data");
  } else if (x->op == MX_OP_PLACEHOLDER) {
    st = mx_error(MX_EINVAL, "[compile] the function's result depends on a placeholder of another trace "
                             "(a value kept from an earlier compile); pass it as an argument instead");
  } else {
    e->kind = E_NODE;
    e->n_in = x->n_in;
    e->in = e->n_in ? malloc(sizeof(mx_array *) * (size_t)e->n_in) : NULL;
    if (e->n_in && !e->in) st = mx_error(MX_ENOMEM, "[compile] out of memory");
    for (int i = 0; i < e->n_in && !st; i++) mx_retain(e->in[i] = x->in[i]);
    if (st) e->n_in = 0;
  }
  mx_graph_unlock();
  return st;
}

/* The DFS stack of record(): entry indices and, for each, its next input to visit. */
typedef struct {
  int64_t *at, *next;
  size_t n, cap;
} dfs_stack;

/* Adds a to the walk (classified) and pushes it. */
static mx_status visit(walk *w, mx_array *a, mx_array *const *holders, int n_in, dfs_stack *s) {
  int64_t j = add_entry(w, a);
  mx_status st = j < 0 ? mx_error(MX_ENOMEM, "[compile] out of memory") : classify(&w->v[j], holders, n_in);
  if (st) return st;
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 64;
    int64_t *a2 = realloc(s->at, s->cap * sizeof *a2);
    if (a2) s->at = a2;
    int64_t *n2 = realloc(s->next, s->cap * sizeof *n2);
    if (n2) s->next = n2;
    if (!a2 || !n2) return mx_error(MX_ENOMEM, "[compile] out of memory");
  }
  s->at[s->n] = j;
  s->next[s->n++] = 0;
  return MX_OK;
}

/* Post-order DFS from the outputs; placeholders and evaluated nodes are leaves. */
static mx_status record(walk *w, mx_array *const *holders, int n_in, mx_array *const *outs, int n_out) {
  dfs_stack s = {0};
  mx_status st = MX_OK;
  for (int r = 0; r < n_out && !st; r++) {
    if (find(w, outs[r]) >= 0) continue;
    if ((st = visit(w, outs[r], holders, n_in, &s))) break;
    while (s.n > 0 && !st) {
      entry *e = &w->v[s.at[s.n - 1]];
      if (s.next[s.n - 1] < e->n_in) {
        mx_array *p = e->in[s.next[s.n - 1]++];
        if (find(w, p) < 0) st = visit(w, p, holders, n_in, &s);
        continue;
      }
      for (int i = 0; i < e->n_in && !e->depends; i++) e->depends = w->v[find(w, e->in[i])].depends;
      w->post[w->npost++] = (size_t)s.at[--s.n];
    }
  }
  free(s.at);
  free(s.next);
  return st;
}

/* Parameter-free nodes that a replay would read (outputs, inputs of dependent
 * nodes) are evaluated now, once, and become constants. */
static mx_status fold(walk *w, mx_array *const *outs, int n_out, int *folded) {
  mx_array **roots = malloc(sizeof(mx_array *) * (w->n ? w->n : 1));
  if (!roots) return mx_error(MX_ENOMEM, "[compile] out of memory");
  uint8_t *is_root = calloc(w->n ? w->n : 1, 1);
  if (!is_root) {
    free(roots);
    return mx_error(MX_ENOMEM, "[compile] out of memory");
  }
  for (int o = 0; o < n_out; o++) is_root[find(w, outs[o])] = 1;
  for (size_t i = 0; i < w->n; i++)
    if (w->v[i].kind == E_NODE && w->v[i].depends)
      for (int j = 0; j < w->v[i].n_in; j++) is_root[find(w, w->v[i].in[j])] = 1;
  int n = 0;
  *folded = 0;
  for (size_t i = 0; i < w->n; i++) {
    if (w->v[i].kind != E_NODE || w->v[i].depends) continue;
    (*folded)++;
    if (is_root[i]) roots[n++] = w->v[i].node;
  }
  mx_status st = n ? mx_eval(roots, n) : MX_OK;
  for (size_t i = 0; i < w->n && !st; i++) {
    entry *e = &w->v[i];
    if (e->kind != E_NODE || e->depends || !is_root[i]) continue;
    e->buf = mx_acquire_buffer(e->node);
    if (!e->buf) st = mx_error(MX_EDISPOSED, "[compile] a constant was disposed while the tape was captured");
    e->kind = E_CONST;
  }
  free(roots);
  free(is_root);
  return st;
}

/* Instruction identity for CSE: op, dtype, shape, params and input slots. */
typedef struct {
  int32_t *slot_of_ins; /* hash table: instruction index + 1 */
  size_t cap;
} cse_table;

static int same_params(const mx_params *a, const mx_params *b) {
  if (!a || !b) return a == b;
  return a->nip == b->nip && a->axis == b->axis && a->flags == b->flags && !memcmp(a->f, b->f, sizeof a->f) &&
         (a->nip <= 0 || !memcmp(a->ip, b->ip, sizeof(int64_t) * (size_t)a->nip));
}

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001B3ull; }

typedef struct {
  mx_tape *t;
  int32_t *in_buf; /* in_idx being built */
  size_t n_idx, cap_idx;
  cse_table cse;
  uint64_t *ins_hash;
  int32_t *ins_of; /* per slot: the instruction computing it, -1 for inputs and constants */
} builder;

static uint64_t ins_key(const mx_array *x, const int32_t *in, int n) {
  uint64_t h = 0xCBF29CE484222325ull;
  h = mix(h, (uint64_t)x->op);
  h = mix(h, (uint64_t)x->dtype);
  for (int i = 0; i < x->ndim; i++) h = mix(h, (uint64_t)x->shape[i]);
  for (int i = 0; i < n; i++) h = mix(h, (uint64_t)in[i]);
  if (x->params) {
    h = mix(h, (uint64_t)x->params->axis);
    h = mix(h, (uint64_t)x->params->flags);
    for (int i = 0; i < x->params->nip; i++) h = mix(h, (uint64_t)x->params->ip[i]);
  }
  return h;
}

/* A slot for a node struct copied from x (its params into the tape's array). */
static int new_slot(mx_tape *t, const mx_array *x, int n_in) {
  int s = t->n_slots++;
  mx_array *y = &t->slots[s];
  memset(y, 0, sizeof *y);
  atomic_init(&y->refs, 1);
  atomic_init(&y->state, MX_READY);
  y->op = x->op;
  y->dtype = x->dtype;
  y->ndim = x->ndim;
  memcpy(y->shape, x->shape, sizeof y->shape);
  y->size = x->size;
  y->cost = x->cost;
  y->n_in = n_in; /* concatenate's kernel reads its input count here */
  if (x->params) {
    t->params[s] = *x->params;
    y->params = &t->params[s];
  }
  return s;
}

/* The slot of a constant, merging equal small ones. */
#define MERGE_BYTES 256
static int const_slot(mx_tape *t, entry *e) {
  if (e->slot >= 0) return e->slot;
  size_t nb = mx_nbytes(e->node);
  if (nb <= MERGE_BYTES)
    for (int s = 0; s < t->n_slots; s++) {
      mx_array *c = &t->slots[s];
      if (t->is_const[s] && c->dtype == e->node->dtype && same_shape(c->ndim, c->shape, e->node->ndim, e->node->shape) &&
          (nb == 0 || !memcmp(c->buf->data, e->buf->data, nb))) {
        t->merged++;
        return e->slot = s;
      }
    }
  int s = new_slot(t, e->node, 0);
  t->slots[s].op = MX_OP_CONSTANT;
  t->slots[s].params = NULL;
  t->slots[s].buf = e->buf; /* the tape takes the entry's reference */
  e->buf = NULL;
  t->is_const[s] = 1;
  t->n_const++;
  return e->slot = s;
}

/* ---- lowering ---------------------------------------------------------------------- */

/* Whether every element of constant slot s equals v exactly (for floats: v's sign of zero
 * too, so that only exact identities are removed: x + (-0) is x, x + 0 is not for x = -0). */
static int const_all(const mx_tape *t, int s, double v) {
  if (!t->is_const[s]) return 0;
  const mx_array *c = &t->slots[s];
  const void *p = c->buf->data;
  for (int64_t i = 0; i < c->size; i++) {
    double x;
    switch ((mx_dtype)c->dtype) {
#define READ(ID, T) \
      case MX_##ID: x = (double)((const T *)p)[i]; break;
      MX_INT_TYPES(READ)
      MX_FLOAT_TYPES(READ)
#undef READ
      default: return 0;
    }
    if (x != v || (mx_is_float((mx_dtype)c->dtype) && signbit(x) != signbit(v))) return 0;
  }
  return c->size > 0;
}

/* Truthiness of a constant predicate: 1 all true, 0 all false, -1 mixed or unknown. */
static int const_truth(const mx_tape *t, int s) {
  if (!t->is_const[s]) return -1;
  const mx_array *c = &t->slots[s];
  int any = 0, all = 1;
  for (int64_t i = 0; i < c->size; i++) {
    int v;
    switch ((mx_dtype)c->dtype) {
#define TRUTH(ID, T) \
      case MX_##ID: v = ((const T *)c->buf->data)[i] != 0; break;
      MX_COMPUTE_TYPES(TRUTH)
#undef TRUTH
      default: return -1;
    }
    any |= v, all &= v;
  }
  return c->size == 0 ? -1 : all ? 1 : any ? -1 : 0;
}

/* The slot x reduces to when it is an algebraic no-op on one of its inputs (same dtype and
 * shape as x, so the value is that input's, bit for bit); -1 when it is real work.
 * ins_of: per slot, the instruction computing it (-1 for inputs and constants). */
static int noop_of(const mx_tape *t, const int32_t *ins_of, const int32_t *in_idx, const mx_array *x, const int32_t *in,
                   int n) {
  int same[3] = {0, 0, 0};
  for (int i = 0; i < n && i < 3; i++) {
    const mx_array *a = &t->slots[in[i]];
    same[i] = a->dtype == x->dtype && same_shape(a->ndim, a->shape, x->ndim, x->shape);
  }
  int f = mx_is_float((mx_dtype)x->dtype) || mx_is_int((mx_dtype)x->dtype);
  switch ((mx_op)x->op) {
    case MX_OP_AS_TYPE:
    case MX_OP_BROADCAST: return same[0] ? in[0] : -1;
    case MX_OP_TRANSPOSE:
      for (int i = 0; i < x->ndim; i++)
        if (x->params->ip[i] != i) return -1;
      return same[0] ? in[0] : -1;
    case MX_OP_NEGATE: {
      int k = ins_of[in[0]];
      return k >= 0 && t->slots[in[0]].op == MX_OP_NEGATE ? in_idx[t->in_off[k]] : -1;
    }
    case MX_OP_MULTIPLY:
      if (f && same[0] && const_all(t, in[1], 1)) return in[0];
      if (f && same[1] && const_all(t, in[0], 1)) return in[1];
      return -1;
    case MX_OP_DIVIDE: return f && same[0] && const_all(t, in[1], 1) ? in[0] : -1;
    case MX_OP_ADD:
      if (f && same[0] && const_all(t, in[1], mx_is_int((mx_dtype)x->dtype) ? 0.0 : -0.0)) return in[0];
      if (f && same[1] && const_all(t, in[0], mx_is_int((mx_dtype)x->dtype) ? 0.0 : -0.0)) return in[1];
      return -1;
    case MX_OP_SUBTRACT: return f && same[0] && const_all(t, in[1], 0.0) ? in[0] : -1;
    case MX_OP_SELECT: {
      int v = const_truth(t, in[0]);
      return v == 1 && same[1] ? in[1] : v == 0 && same[2] ? in[2] : -1;
    }
    default: return -1;
  }
}

static mx_status emit(walk *w, builder *b, mx_array *const *outs, int n_out) {
  mx_tape *t = b->t;
  for (size_t k = 0; k < w->npost; k++) {
    entry *e = &w->v[w->post[k]];
    if (e->kind == E_INPUT) {
      e->slot = e->holder;
      continue;
    }
    if (e->kind != E_NODE || !e->depends) continue; /* constants get slots when read */
    mx_array *x = e->node;
    int32_t local[8], *in = e->n_in <= 8 ? local : malloc(sizeof(int32_t) * (size_t)e->n_in);
    if (!in) return mx_error(MX_ENOMEM, "[compile] out of memory");
    for (int i = 0; i < e->n_in; i++) {
      entry *p = &w->v[find(w, e->in[i])];
      in[i] = p->kind == E_CONST ? const_slot(t, p) : p->slot;
      /* kernels that broadcast their inputs read a broadcast's source directly (the same values) */
      int k = b->ins_of[in[i]];
      if (k >= 0 && t->slots[in[i]].op == MX_OP_BROADCAST &&
          (mx_ops[x->op].family == MX_FAM_BINARY || x->op == MX_OP_SELECT || x->op == MX_OP_BETAINC)) {
        in[i] = b->in_buf[t->in_off[k]];
        t->noops++;
      }
    }
    /* stop_gradient and an identity reshape (trace_input) share their input's buffer: aliases. */
    if (x->op == MX_OP_STOP_GRADIENT ||
        (x->op == MX_OP_RESHAPE && same_shape(x->ndim, x->shape, e->in[0]->ndim, e->in[0]->shape))) {
      e->slot = in[0];
      t->merged++;
      if (in != local) free(in);
      continue;
    }
    int same = noop_of(t, b->ins_of, b->in_buf, x, in, e->n_in);
    if (same >= 0) {
      e->slot = same;
      t->noops++;
      if (in != local) free(in);
      continue;
    }
    uint64_t h = ins_key(x, in, e->n_in);
    for (size_t p = h & (b->cse.cap - 1); b->cse.slot_of_ins[p]; p = (p + 1) & (b->cse.cap - 1)) {
      int j = b->cse.slot_of_ins[p] - 1;
      const mx_array *y = &t->slots[t->ins_slot[j]];
      int n_j = t->in_off[j + 1] - t->in_off[j];
      if (b->ins_hash[j] == h && y->op == x->op && y->dtype == x->dtype && n_j == e->n_in &&
          same_shape(y->ndim, y->shape, x->ndim, x->shape) && same_params(y->params, x->params) &&
          (e->n_in == 0 || !memcmp(b->in_buf + t->in_off[j], in, sizeof(int32_t) * (size_t)e->n_in))) {
        e->slot = t->ins_slot[j];
        break;
      }
    }
    if (e->slot >= 0) {
      t->merged++;
      if (in != local) free(in);
      continue;
    }
    int kk = t->n_ins++;
    e->slot = new_slot(t, x, e->n_in);
    t->ins_slot[kk] = e->slot;
    b->ins_of[e->slot] = kk;
    b->ins_hash[kk] = h;
    t->in_off[kk] = (int32_t)b->n_idx;
    memcpy(b->in_buf + b->n_idx, in, sizeof(int32_t) * (size_t)e->n_in);
    b->n_idx += (size_t)e->n_in;
    t->in_off[kk + 1] = (int32_t)b->n_idx;
    size_t p = h & (b->cse.cap - 1);
    while (b->cse.slot_of_ins[p]) p = (p + 1) & (b->cse.cap - 1);
    b->cse.slot_of_ins[p] = kk + 1;
    t->cost += x->cost + (int64_t)mx_nbytes(x) + MX_NODE_COST;
    t->deep |= mx_op_is_deep((mx_op)x->op);
    if (in != local) free(in);
  }
  for (int o = 0; o < n_out; o++) {
    entry *e = &w->v[find(w, outs[o])];
    t->out_slot[o] = e->kind == E_CONST ? const_slot(t, e) : e->slot;
  }
  return MX_OK;
}

/* Drops instructions whose values nothing reads (left behind by no-op removal). */
static void drop_dead(mx_tape *t) {
  uint8_t *live = calloc((size_t)t->n_slots + 1, 1);
  if (!live) return; /* keeping dead instructions is only slower */
  for (int o = 0; o < t->n_out; o++) live[t->out_slot[o]] = 1;
  for (int k = t->n_ins - 1; k >= 0; k--)
    if (live[t->ins_slot[k]])
      for (int j = t->in_off[k]; j < t->in_off[k + 1]; j++) live[t->in_idx[j]] = 1;
  int n = 0, at = 0;
  for (int k = 0; k < t->n_ins; k++) {
    int lo = t->in_off[k], hi = t->in_off[k + 1];
    if (!live[t->ins_slot[k]]) {
      t->dead++;
      continue;
    }
    t->ins_slot[n] = t->ins_slot[k];
    t->in_off[n] = at;
    memmove(t->in_idx + at, t->in_idx + lo, sizeof(int32_t) * (size_t)(hi - lo));
    at += hi - lo;
    n++;
  }
  t->n_ins = n;
  t->in_off[n] = at;
  free(live);
}

/* ---- the replay plan: fusion groups, storage, prepared loops ------------------------------ */

/* Prepares instruction k's elementwise loop (the kernel itself fills it: see kernels.h). */
static mx_status prepare_ew(mx_tape *t, int k) {
  mx_array *x = &t->slots[t->ins_slot[k]];
  int n = t->in_off[k + 1] - t->in_off[k];
  if (fuse_kind[x->op] != FUSE_E || n > 3 || x->size == 0 || mx_is_complex((mx_dtype)x->dtype)) return MX_OK;
  static char dummy[64];
  mx_buffer fake = {.data = dummy};
  mx_array out = *x, ins[3], *ptrs[3];
  out.buf = &fake;
  for (int i = 0; i < n; i++) {
    ins[i] = t->slots[t->in_idx[t->in_off[k] + i]];
    if (mx_is_complex((mx_dtype)ins[i].dtype)) return MX_OK;
    ins[i].buf = &fake;
    ptrs[i] = &ins[i];
  }
  mx_ew e = {0};
  mx_ew_capture = &e;
  mx_status st = mx_ops[x->op].kernel(&out, ptrs);
  mx_ew_capture = NULL;
  if (st) {
    free(e.ctx);
    return st;
  }
  t->ew[k] = e;
  t->ew_bytes += align64(e.ctx_size);
  return MX_OK;
}

/* Runs of consecutive prepared elementwise instructions of one output shape. A member's value
 * that nothing outside its group reads lives only in a scratch block. */
static mx_status group(mx_tape *t, const int32_t *ins_of) {
  int32_t *outside = calloc((size_t)t->n_slots, sizeof(int32_t)); /* read outside its group */
  int32_t *last_in = malloc(sizeof(int32_t) * (size_t)t->n_slots); /* its last reader */
  int32_t *free_sc = malloc(sizeof(int32_t) * (size_t)(t->n_ins + 1));
  if (!outside || !last_in || !free_sc) {
    free(outside), free(last_in), free(free_sc);
    return mx_error(MX_ENOMEM, "[compile] out of memory");
  }
  for (int k = 0; k < t->n_ins;) {
    const mx_array *x = &t->slots[t->ins_slot[k]];
    int j = k;
    if (t->ew[k].range)
      for (j = k + 1; j < t->n_ins && j - k < 64 && t->ew[j].range; j++) {
        const mx_array *y = &t->slots[t->ins_slot[j]];
        if (!same_shape(y->ndim, y->shape, x->ndim, x->shape)) break;
      }
    /* a trailing reduction of the last member joins when the group is one block: the reduce
     * kernel then reads the block in scratch (its own summation order, so the same bits) */
    if (j - k >= 1 && j < t->n_ins && j - k < 64 && fuse_kind[t->slots[t->ins_slot[j]].op] == FUSE_R &&
        x->size <= BLOCK && t->in_off[j + 1] - t->in_off[j] == 1 && t->in_idx[t->in_off[j]] == t->ins_slot[j - 1])
      j++;
    if (j - k >= 2) {
      int g = t->n_groups++;
      t->groups[g] = (fgroup){k, j - k, 0, 0, 0};
      for (int m = k; m < j; m++) t->group_of[m] = g, t->kind[m] = m == k ? K_GROUP : K_MEMBER;
      t->fused += j - k;
    }
    k = j > k ? j : k + 1;
  }
  for (int o = 0; o < t->n_out; o++) outside[t->out_slot[o]] = 1;
  for (int k = 0; k < t->n_ins; k++)
    for (int j = t->in_off[k]; j < t->in_off[k + 1]; j++) {
      int s = t->in_idx[j], p = ins_of[s];
      last_in[s] = k;
      if (p >= 0 && (t->group_of[p] < 0 || t->group_of[p] != t->group_of[k])) outside[s] = 1;
    }
  for (int g = 0; g < t->n_groups; g++) {
    fgroup *G = &t->groups[g];
    int n_free = 0;
    for (int k = G->first; k < G->first + G->count; k++) {
      int s = t->ins_slot[k];
      if (!outside[s]) t->scratch_of[s] = n_free ? free_sc[--n_free] : G->n_scratch++;
      for (int j = t->in_off[k]; j < t->in_off[k + 1]; j++) {
        int si = t->in_idx[j];
        if (t->scratch_of[si] >= 0 && last_in[si] == k) {
          int dup = 0; /* read twice by k: give it back once */
          for (int q = 0; q < n_free; q++) dup |= free_sc[q] == t->scratch_of[si];
          if (!dup) free_sc[n_free++] = t->scratch_of[si];
        }
      }
    }
    if (G->n_scratch > t->max_scratch) t->max_scratch = G->n_scratch;
  }
  free(outside), free(last_in), free(free_sc);
  return MX_OK;
}

/* Arena blocks of freed intermediates: (offset, bytes), best fit, neighbours merged. */
typedef struct {
  int64_t *off, *len;
  int n;
} free_list;

static int64_t arena_take(free_list *f, int64_t *top, int64_t len) {
  int best = -1;
  for (int i = 0; i < f->n; i++)
    if (f->len[i] >= len && (best < 0 || f->len[i] < f->len[best])) best = i;
  if (best < 0) {
    int64_t at = *top;
    *top += len;
    return at;
  }
  int64_t at = f->off[best];
  f->off[best] += len;
  f->len[best] -= len;
  return at;
}

static void arena_give(free_list *f, int64_t off, int64_t len) {
  for (int i = 0; i < f->n; i++) {
    if (f->off[i] + f->len[i] == off) { /* merge with the block before, then maybe after */
      f->len[i] += len;
      for (int j = 0; j < f->n; j++)
        if (j != i && f->off[j] == f->off[i] + f->len[i]) {
          f->len[i] += f->len[j];
          f->off[j] = f->off[--f->n], f->len[j] = f->len[f->n];
          break;
        }
      return;
    }
    if (off + len == f->off[i]) {
      f->off[i] = off;
      f->len[i] += len;
      return;
    }
  }
  f->off[f->n] = off;
  f->len[f->n++] = len;
}

/* Storage: each intermediate's bytes in one arena, reused once its last reader has run (a
 * fused group's inputs stay until the group ends: it reads them block by block); an
 * elementwise result takes over the memory of an input that dies at it (same positions). */
static mx_status place(mx_tape *t) {
  int ns = t->n_slots;
  int32_t *free_at = malloc(sizeof(int32_t) * (size_t)ns), *last = malloc(sizeof(int32_t) * (size_t)ns);
  int32_t *head = malloc(sizeof(int32_t) * (size_t)(t->n_ins + 1)), *next = malloc(sizeof(int32_t) * (size_t)ns);
  uint8_t *moved = calloc((size_t)ns, 1);
  free_list f = {malloc(sizeof(int64_t) * (size_t)ns), malloc(sizeof(int64_t) * (size_t)ns), 0};
  if (!free_at || !last || !head || !next || !moved || !f.off || !f.len) {
    free(free_at), free(last), free(head), free(next), free(moved), free(f.off), free(f.len);
    return mx_error(MX_ENOMEM, "[compile] out of memory");
  }
  for (int s = 0; s < ns; s++) {
    t->root[s] = s;
    t->store[s] = s < t->n_in ? S_INPUT : t->is_const[s] ? S_CONST : S_SCRATCH; /* dead slots: no storage */
    free_at[s] = last[s] = -1;
  }
  for (int k = 0; k < t->n_ins; k++) {
    int s = t->ins_slot[k], op = t->slots[s].op;
    if (op == MX_OP_RESHAPE || op == MX_OP_STOP_GRADIENT) {
      t->root[s] = t->root[t->in_idx[t->in_off[k]]];
      t->kind[k] = K_ALIAS;
    } else if (t->kind[k] == K_KERNEL && t->ew[k].range) {
      t->kind[k] = K_EW;
    }
    t->store[s] = t->scratch_of[s] >= 0 ? S_SCRATCH : S_ARENA;
    free_at[s] = last[s] = k; /* read by nobody: free right after */
  }
  for (int o = 0; o < t->n_out; o++) {
    int r = t->root[t->out_slot[o]];
    if (t->store[r] == S_ARENA) t->store[r] = S_OUT;
  }
  for (int s = 0; s < ns; s++) t->store[s] = t->store[t->root[s]];
  for (int k = 0; k < t->n_ins; k++) {
    if (t->kind[k] == K_ALIAS) continue;
    int g = t->group_of[k], end = g >= 0 ? t->groups[g].first + t->groups[g].count - 1 : k;
    for (int j = t->in_off[k]; j < t->in_off[k + 1]; j++) {
      int r = t->root[t->in_idx[j]];
      if (last[r] < k) last[r] = k;
      if (free_at[r] < end) free_at[r] = end;
    }
  }
  for (int k = 0; k <= t->n_ins; k++) head[k] = -1;
  for (int s = 0; s < ns; s++)
    if (t->root[s] == s && t->store[s] == S_ARENA && free_at[s] >= 0) next[s] = head[free_at[s]], head[free_at[s]] = s;
  int64_t top = 0;
  for (int k = 0; k < t->n_ins; k++) {
    int s = t->ins_slot[k];
    if (t->root[s] == s && t->store[s] == S_ARENA) {
      const mx_array *x = &t->slots[s];
      int64_t len = (int64_t)align64(mx_nbytes(x));
      int into = -1;
      if (t->ew[k].range && t->slots[s].op != MX_OP_AS_TYPE)
        for (int j = t->in_off[k]; j < t->in_off[k + 1] && into < 0; j++) {
          int r = t->root[t->in_idx[j]];
          const mx_array *a = &t->slots[r];
          if (t->store[r] == S_ARENA && !moved[r] && last[r] == k && a->size == x->size &&
              mx_dtype_size((mx_dtype)a->dtype) == mx_dtype_size((mx_dtype)x->dtype))
            into = r;
        }
      if (into >= 0) {
        t->offset[s] = t->offset[into];
        moved[into] = 1; /* s frees it */
      } else {
        t->offset[s] = arena_take(&f, &top, len ? len : 64);
      }
    }
    for (int r = head[k]; r >= 0; r = next[r])
      if (!moved[r]) arena_give(&f, t->offset[r], (int64_t)align64(mx_nbytes(&t->slots[r])) ?: 64);
  }
  t->arena_bytes = top;
  for (int s = 0; s < ns; s++) t->esz[s] = (int8_t)mx_dtype_size((mx_dtype)t->slots[s].dtype);
  for (int pass = 0; pass < 2; pass++) /* roots first: aliases copy their root's buffer */
    for (int s = 0; s < ns; s++)
      if ((t->store[s] == S_INPUT || t->store[s] == S_OUT) && (t->root[s] == s) == !pass) t->io[t->n_io++] = s;
  for (int o = 0; o < t->n_out; o++) {
    int r = t->root[t->out_slot[o]], first = 1;
    for (int p = 0; p < o; p++) first &= t->root[t->out_slot[p]] != r;
    t->out_owner[o] = t->store[r] == S_OUT && first;
  }
  for (int k = 0; k < t->n_ins; k++) {
    const mx_array *x = &t->slots[t->ins_slot[k]];
    int64_t c = x->cost + (int64_t)mx_nbytes(x) + 8;
    t->ins_cost[k] = (int32_t)(c > INT32_MAX ? INT32_MAX : c);
  }
  for (int g = 0; g < t->n_groups; g++) {
    fgroup *G = &t->groups[g];
    int64_t n = t->slots[t->ins_slot[G->first]].size, cost = 0;
    for (int m = 0; m < G->count; m++) cost += t->ins_cost[G->first + m];
    G->n_blocks = (n + BLOCK - 1) / BLOCK;
    /* ~0.1 ms of work a chunk (cost units are ~0.1 ns), as the kernels' grain */
    G->grain = ((int64_t)1 << 20) / (cost / (G->n_blocks ? G->n_blocks : 1) + 1);
    if (G->grain < 1) G->grain = 1;
  }
  for (int k = 0; k < t->n_ins; k++) {
    int g = t->group_of[k];
    if (t->kind[k] != K_ALIAS && t->kind[k] != K_MEMBER) {
      t->steps[t->n_steps] = k;
      int64_t c = 0;
      for (int m = k; m < (g >= 0 ? t->groups[g].first + t->groups[g].count : k + 1); m++) c += t->ins_cost[m];
      t->step_cost[t->n_steps++] = (int32_t)(c > INT32_MAX ? INT32_MAX : c);
    }
    if (g < 0) continue;
    member *d = &t->members[k];
    int s = t->ins_slot[k];
    d->range = t->ew[k].range;
    d->bind = t->ew[k].bind;
    d->fast = t->fast[k];
    d->out = s;
    d->out_esz = t->esz[s];
    d->out_scr = t->scratch_of[s] >= 0 ? t->scratch_of[s] * SCRATCH_BYTES : -1;
    d->nin = (int8_t)(t->in_off[k + 1] - t->in_off[k]);
    for (int i = 0; i < d->nin && i < 3; i++) {
      int si = t->in_idx[t->in_off[k] + i];
      d->in[i] = si;
      d->in_esz[i] = t->esz[si];
      d->in_scr[i] = t->scratch_of[si] >= 0 ? t->scratch_of[si] * SCRATCH_BYTES : -1;
    }
  }
  free(free_at), free(last), free(head), free(next), free(moved), free(f.off), free(f.len);
  return MX_OK;
}

static mx_status plan(mx_tape *t) {
  size_t ns = (size_t)(t->n_slots ? t->n_slots : 1), ni = (size_t)(t->n_ins ? t->n_ins : 1);
  t->kind = calloc(ni, 1);
  t->group_of = malloc(sizeof(int32_t) * ni);
  t->groups = calloc(ni, sizeof(fgroup));
  t->scratch_of = malloc(sizeof(int32_t) * ns);
  t->root = malloc(sizeof(int32_t) * ns);
  t->store = calloc(ns, 1);
  t->offset = calloc(ns, sizeof(int64_t));
  t->ew = calloc(ni, sizeof(mx_ew));
  t->fast = calloc(ni, sizeof(fast_op));
  t->ins_cost = calloc(ni, sizeof(int32_t));
  t->out_owner = calloc((size_t)(t->n_out ? t->n_out : 1), 1);
  t->esz = calloc(ns, 1);
  t->io = calloc(ns, sizeof(int32_t));
  t->members = calloc(ni, sizeof(member));
  t->steps = calloc(ni, sizeof(int32_t));
  t->step_cost = calloc(ni, sizeof(int32_t));
  int32_t *ins_of = malloc(sizeof(int32_t) * ns);
  if (!t->kind || !t->group_of || !t->groups || !t->scratch_of || !t->root || !t->store || !t->offset || !t->ew || !t->fast ||
      !t->ins_cost || !t->out_owner || !t->esz || !t->io || !t->members || !t->steps || !t->step_cost || !ins_of) {
    free(ins_of);
    return mx_error(MX_ENOMEM, "[compile] out of memory");
  }
  for (size_t s = 0; s < ns; s++) t->scratch_of[s] = ins_of[s] = -1;
  for (int k = 0; k < t->n_ins; k++) t->group_of[k] = -1, ins_of[t->ins_slot[k]] = k;
  mx_status st = MX_OK;
  for (int k = 0; k < t->n_ins && !st; k++) st = prepare_ew(t, k);
  for (int k = 0; k < t->n_ins && !st; k++) t->n_fast += (t->fast[k] = fast_of(t, k)).cls != FAST_NONE;
  if (!st) st = group(t, ins_of);
  if (!st) st = place(t);
  free(ins_of);
  return st;
}

mx_status mx_tape_capture(mx_array *const *holders, int n_in, mx_array *const *outs, int n_out, mx_tape **out) {
  for (int i = 0; i < n_in; i++) {
    if (holders[i]->op != MX_OP_PLACEHOLDER)
      return mx_error(MX_EINVAL, "[compile] input %d is a %s node, not a placeholder", i, mx_ops[holders[i]->op].name);
    for (int j = 0; j < i; j++)
      if (holders[j] == holders[i]) return mx_error(MX_EINVAL, "[compile] placeholder %d is given twice", i);
  }
  walk w = {0};
  mx_status st = record(&w, holders, n_in, outs, n_out);
  int folded = 0;
  if (!st) st = fold(&w, outs, n_out, &folded);
  mx_tape *t = NULL;
  builder b = {0};
  if (!st) {
    size_t n_slots = (size_t)n_in + w.n + 1, n_idx = 0;
    for (size_t i = 0; i < w.n; i++) n_idx += (size_t)w.v[i].n_in;
    t = calloc(1, sizeof *t);
    size_t cap = 16;
    while (cap < 2 * w.n) cap *= 2;
    if (t) {
      t->slots = calloc(n_slots, sizeof(mx_array));
      t->params = calloc(n_slots, sizeof(mx_params));
      t->is_const = calloc(n_slots, 1);
      t->ins_slot = malloc(sizeof(int32_t) * (w.n + 1));
      t->in_off = malloc(sizeof(int32_t) * (w.n + 2));
      t->out_slot = malloc(sizeof(int32_t) * (size_t)(n_out ? n_out : 1));
      b.in_buf = malloc(sizeof(int32_t) * (n_idx ? n_idx : 1));
      b.cse.slot_of_ins = calloc(cap, sizeof(int32_t));
      b.cse.cap = cap;
      b.ins_hash = malloc(sizeof(uint64_t) * (w.n + 1));
      b.ins_of = malloc(sizeof(int32_t) * n_slots);
      if (b.ins_of)
        for (size_t i = 0; i < n_slots; i++) b.ins_of[i] = -1;
    }
    if (!t || !t->slots || !t->params || !t->is_const || !t->ins_slot || !t->in_off || !t->out_slot || !b.in_buf ||
        !b.cse.slot_of_ins || !b.ins_hash || !b.ins_of)
      st = mx_error(MX_ENOMEM, "[compile] out of memory");
  }
  if (!st) {
    atomic_init(&t->refs, 1);
    t->n_in = n_in;
    t->n_out = n_out;
    t->folded = folded;
    t->in_off[0] = 0;
    b.t = t;
    for (int i = 0; i < n_in; i++) new_slot(t, holders[i], 0);
    st = emit(&w, &b, outs, n_out);
  }
  if (!st) {
    t->in_idx = b.in_buf;
    b.in_buf = NULL;
    drop_dead(t);
    st = plan(t);
  }
  free(b.in_buf);
  free(b.ins_of);
  free(b.cse.slot_of_ins);
  free(b.ins_hash);
  walk_free(&w);
  if (t) {
    /* Counted before any release, which subtracts them. */
    t->bytes = (int64_t)(sizeof *t + (size_t)t->n_slots * (sizeof(mx_array) + sizeof(mx_params) + 2 + 3 * sizeof(int32_t)) +
                         (size_t)t->n_ins * (3 * sizeof(int32_t) + sizeof(mx_ew) + sizeof(fast_op) + sizeof(fgroup) + 1) + t->ew_bytes +
                         sizeof(int32_t) * (size_t)(t->n_out + 3 + (t->in_off ? t->in_off[t->n_ins] : 0)));
    for (int s = 0; s < t->n_slots; s++)
      if (t->is_const[s]) t->bytes += (int64_t)t->slots[s].buf->capacity;
    atomic_fetch_add(&tapes_live, 1);
    atomic_fetch_add(&tapes_bytes, t->bytes);
    if (!t->refs) atomic_init(&t->refs, 1);
  }
  if (st) {
    mx_tape_release(t);
    return st;
  }
  *out = t;
  return MX_OK;
}

/* ---- for jit.c ----------------------------------------------------------------------- */

void mx_tape_view_get(const mx_tape *t, mx_tape_view *v) {
  *v = (mx_tape_view){t->n_in, t->n_out, t->n_ins, t->n_slots, t->slots, t->ins_slot, t->in_off, t->in_idx,
                      t->out_slot, t->is_const};
}

int mx_tape_jit_install(mx_tape *t, mx_jit *j) {
  mx_jit *none = NULL;
  return atomic_compare_exchange_strong(&t->jit, &none, j);
}

mx_jit *mx_tape_jit(const mx_tape *t) { return atomic_load_explicit(&((mx_tape *)t)->jit, memory_order_acquire); }
