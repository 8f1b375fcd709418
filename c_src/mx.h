/* mx.h: the Mx engine's public C interface. Plain C11; nothing here knows the BEAM.
 *
 * An mx_array is a refcounted graph node. Op constructors (ops.c, ops_shape.c)
 * validate inputs, infer shape and dtype, and return a PENDING node; mx_eval
 * (graph.c) runs pending nodes in topological order with the kernels of the
 * primitive table (ops.def), then detaches each finished node from its inputs.
 * Every function that can fail returns an mx_status and leaves a message
 * retrievable with mx_last_error(); nothing here aborts. */
#ifndef MX_H
#define MX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MX_MAX_RANK 8
#define MX_MAX_INPUTS 4096 /* concatenate/stack of many arrays */

/* ---- status ---------------------------------------------------------------- */
typedef enum {
  MX_OK = 0,
  MX_EINVAL,    /* bad argument: shape, dtype, axis, parameter */
  MX_ENOMEM,    /* allocation failed or the memory limit was hit */
  MX_EDISPOSED, /* the array (or an input) was disposed */
  MX_ECOMPUTE,  /* a kernel failed (e.g. a LAPACK error) */
  MX_ECANCELLED, /* the task was cancelled (its caller went away) */
  MX_EYIELD,    /* mx_eval_budget ran out of time with work left; evaluate again to go on */
} mx_status;

/* Sets the thread-local error message (printf-style) and returns code. */
mx_status mx_error(mx_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *mx_last_error(void);

/* ---- dtypes --------------------------------------------------------------- */
/* X(ID, name, C storage type, bytes, kind) ; kind: 'b' bool, 'u', 's', 'f',
 * 'h' (f16/bf16), 'c' complex (interleaved re, im: C99 float/double _Complex).
 * f16/bf16 are storage types: as_type converts; compute ops run in f32. */
#define MX_DTYPES(X)                   \
  X(BOOL, "bool", uint8_t, 1, 'b')     \
  X(U8, "u8", uint8_t, 1, 'u')         \
  X(U16, "u16", uint16_t, 2, 'u')      \
  X(U32, "u32", uint32_t, 4, 'u')      \
  X(U64, "u64", uint64_t, 8, 'u')      \
  X(S8, "s8", int8_t, 1, 's')          \
  X(S16, "s16", int16_t, 2, 's')       \
  X(S32, "s32", int32_t, 4, 's')       \
  X(S64, "s64", int64_t, 8, 's')       \
  X(F16, "f16", uint16_t, 2, 'h')      \
  X(BF16, "bf16", uint16_t, 2, 'h')    \
  X(F32, "f32", float, 4, 'f')         \
  X(F64, "f64", double, 8, 'f')        \
  X(C64, "c64", float _Complex, 8, 'c') \
  X(C128, "c128", double _Complex, 16, 'c')

typedef enum {
#define X(id, name, ctype, bytes, kind) MX_##id,
  MX_DTYPES(X)
#undef X
  MX_DTYPE_COUNT
} mx_dtype;

int mx_dtype_size(mx_dtype t);
const char *mx_dtype_name(mx_dtype t);
int mx_dtype_from_name(const char *name); /* -1 if unknown */
int mx_is_float(mx_dtype t);               /* f16, bf16, f32, f64 (not complex) */
int mx_is_complex(mx_dtype t);             /* c64, c128 */
int mx_is_int(mx_dtype t);                 /* u*, s* (not bool) */
int mx_is_unsigned(mx_dtype t);            /* bool, u* */
int mx_dtype_bits(mx_dtype t);
/* Nx's promotion rules (see lib/mx/type.ex for the documented table). */
mx_dtype mx_promote(mx_dtype a, mx_dtype b);

/* Expands X(ID, ctype) over the dtypes kernels compute in (not f16/bf16). */
#define MX_COMPUTE_TYPES(X) \
  X(BOOL, uint8_t)          \
  X(U8, uint8_t)            \
  X(U16, uint16_t)          \
  X(U32, uint32_t)          \
  X(U64, uint64_t)          \
  X(S8, int8_t)             \
  X(S16, int16_t)           \
  X(S32, int32_t)           \
  X(S64, int64_t)           \
  X(F32, float)             \
  X(F64, double)
#define MX_INT_TYPES(X) \
  X(U8, uint8_t)        \
  X(U16, uint16_t)      \
  X(U32, uint32_t)      \
  X(U64, uint64_t)      \
  X(S8, int8_t)         \
  X(S16, int16_t)       \
  X(S32, int32_t)       \
  X(S64, int64_t)
#define MX_FLOAT_TYPES(X) \
  X(F32, float)           \
  X(F64, double)
/* Complex dtypes are not in MX_COMPUTE_TYPES: kernels that support them say so. */
#define MX_COMPLEX_TYPES(X) \
  X(C64, float _Complex)    \
  X(C128, double _Complex)

/* ---- primitives --------------------------------------------------------- */
typedef enum {
#define MX_OP(id, name, family, rule, kernel, vjp, jvp, batch) MX_OP_##id,
#include "ops.def"
#undef MX_OP
  MX_OP_COUNT
} mx_op;

/* Families choose the generic NIF and constructor; rules choose the dtype. */
typedef enum { MX_FAM_SOURCE, MX_FAM_UNARY, MX_FAM_BINARY, MX_FAM_REDUCE, MX_FAM_SCAN, MX_FAM_SHAPE, MX_FAM_INDEX, MX_FAM_SORT, MX_FAM_LINALG, MX_FAM_OTHER } mx_family;
typedef enum {
  MX_RULE_SAME,  /* out dtype = input dtype */
  MX_RULE_FLOAT, /* ints and bool become f32; floats stay */
  MX_RULE_BOOL,  /* out is bool */
  MX_RULE_ARITH, /* binary: promoted dtype (bool becomes u8) */
  MX_RULE_CMP,   /* binary: inputs promoted, out bool */
  MX_RULE_LOGIC, /* inputs read as truthy, out bool */
  MX_RULE_AGG,   /* reduce: ints widen to s64/u64, bool to s64 */
  MX_RULE_INDEX, /* out s64 */
  MX_RULE_OWN,   /* the constructor decides */
  MX_RULE_INT,   /* integer inputs only (bool too for bitwise not/and/or/xor): ops_bitwise.c */
} mx_rule;

typedef struct mx_array mx_array;
typedef mx_status (*mx_kernel)(mx_array *out, mx_array *const *in);
/* A vjp rule: given the node, its inputs and the cotangent of its output, the
 * cotangents of its inputs (NULL where an input gets none). Built from ops, so
 * rules are themselves differentiable (grad of grad, jvp by transposition). */
typedef mx_status (*mx_vjp_rule)(mx_array *node, mx_array *const *in, mx_array *cot, mx_array **in_cots);

typedef struct {
  const char *name;
  mx_family family;
  mx_rule rule;
  mx_kernel kernel;
  mx_vjp_rule vjp; /* NULL unless grad == 'D' */
  char grad;       /* ops.def vjp column: 'D', 'Z' or 'N' */
} mx_op_info;

extern const mx_op_info mx_ops[MX_OP_COUNT];
int mx_op_from_name(const char *name); /* -1 if unknown */

/* ---- buffers (alloc.c) ------------------------------------------------------ */
typedef struct mx_buffer {
  _Atomic int32_t refs;
  size_t nbytes;   /* bytes requested */
  size_t capacity; /* bytes of the size class */
  void *data;      /* 64-byte aligned */
} mx_buffer;

mx_status mx_buffer_alloc(size_t nbytes, mx_buffer **out);
void mx_buffer_retain(mx_buffer *b);
void mx_buffer_release(mx_buffer *b);

typedef struct {
  int64_t active_bytes, peak_bytes, cache_bytes, live_arrays, live_buffers;
  int64_t cache_limit, memory_limit; /* -1: no limit */
  int64_t alloc_count, cache_hits;
} mx_memory_stats;
void mx_memory_stats_get(mx_memory_stats *s);
void mx_memory_reset_peak(void);
void mx_memory_set_cache_limit(int64_t bytes); /* -1 = unlimited */
void mx_memory_set_memory_limit(int64_t bytes); /* -1 = unlimited */
void mx_memory_clear_cache(void);
void mx_fft_cache_clear(void); /* FFT plans (prim/fft.c): twiddles kept for reuse */

/* ---- arrays (array.c) ------------------------------------------------------- */
typedef enum { MX_PENDING = 0, MX_RUNNING, MX_READY, MX_DISPOSED } mx_state;

/* Per-op parameters. Integer parameters (axes, starts/stops/strides, pads,
 * permutation) live in ip[]; scalars in f[]; axis and flags for the rest. */
typedef struct {
  int64_t ip[3 * MX_MAX_RANK];
  int32_t nip;
  int32_t axis;
  int32_t flags;
  double f[2];
} mx_params;

/* Flags used by several ops. */
enum { MX_F_KEEP = 1, MX_F_DESC = 2, MX_F_REVERSE = 4 };

struct mx_array {
  _Atomic int32_t refs;
  _Atomic int32_t state; /* mx_state */
  int16_t op;            /* mx_op; MX_OP_CONSTANT for data leaves */
  int8_t dtype;
  int8_t ndim;
  int32_t n_in;
  int64_t shape[MX_MAX_RANK];
  int64_t size;          /* product of shape */
  mx_array **in;         /* retained inputs; NULL once detached */
  mx_params *params;     /* NULL for ops without parameters */
  mx_buffer *buf;        /* data once READY */
  int64_t cost;          /* estimated work, elements touched (for scheduling) */
  uint64_t mark;         /* graph traversal epoch (graph.c, under its lock) */
  uint8_t traced;        /* depends on an input being differentiated: kept attached after eval */
  uint8_t dispose_pending; /* disposed while RUNNING: the evaluating thread frees it (graph.c) */
};

static inline void *mx_data(const mx_array *a) { return a->buf ? a->buf->data : NULL; }
static inline size_t mx_nbytes(const mx_array *a) { return (size_t)a->size * (size_t)mx_dtype_size((mx_dtype)a->dtype); }

void mx_retain(mx_array *a);
void mx_release(mx_array *a); /* iterative: safe on 10^6-node chains */
/* As mx_release, but frees at most `budget` nodes on the calling thread: the rest of a
 * large graph, and big buffers, are freed on an engine thread (for BEAM schedulers). */
void mx_release_bounded(mx_array *a, int64_t budget);
/* Graphs handed to engine threads by mx_release_bounded and not yet freed; waits for none. */
int64_t mx_reap_pending(void);
void mx_reap_wait(void);
/* A new PENDING node; takes new references to inputs. */
mx_status mx_node_new(mx_op op, mx_dtype dtype, int ndim, const int64_t *shape, int n_in, mx_array *const *in,
                      const mx_params *params, mx_array **out);
/* A READY leaf whose buffer holds a copy of data (nbytes must match). */
mx_status mx_from_data(mx_dtype dtype, int ndim, const int64_t *shape, const void *data, size_t nbytes, mx_array **out);
/* A READY leaf holding buf (retained; buf must hold at least the array's bytes). */
mx_status mx_from_buffer(mx_dtype dtype, int ndim, const int64_t *shape, mx_buffer *buf, mx_array **out);
/* Frees the buffer now; later reads fail with MX_EDISPOSED. */
void mx_dispose(mx_array *a);
int mx_is_ready(const mx_array *a);
int64_t mx_live_arrays(void);
/* "f32[2][3]" into dst; returns dst. */
char *mx_describe(const mx_array *a, char *dst, size_t cap);
char *mx_describe_shape(int ndim, const int64_t *shape, char *dst, size_t cap);
mx_status mx_check_shape(const char *op, int ndim, const int64_t *shape, int64_t *size_out);

/* ---- evaluation (graph.c) -------------------------------------------------- */
mx_status mx_eval(mx_array *const *roots, int n);
/* As mx_eval, but stops with MX_EYIELD once budget_ns of wall time has passed
 * (checked between nodes) or when it would wait for a node another eval is
 * computing; the nodes already computed stay computed. */
mx_status mx_eval_budget(mx_array *const *roots, int n, int64_t budget_ns);
/* Work pending under these roots, to choose a scheduler: the nodes' costs
 * (a unit is ~0.1 ns of one core), the bytes they write and MX_NODE_COST a node; stops counting
 * once past `limit`. *deep is set when a pending node must run on an engine
 * thread (mx_op_is_deep). Nonzero when evaluating would fail (a disposed node). */
#define MX_NODE_COST 1500
int64_t mx_pending_cost(mx_array *const *roots, int n, int64_t limit, int *deep);
/* BLAS and LAPACK (the LINALG family): their stack use is not ours to bound. */
int mx_op_is_deep(mx_op op);
/* A node's default cost per element (ops.c); constructors may set a better estimate. */
int64_t mx_op_weight(mx_op op);
/* Nodes reachable from roots through attached inputs (pending and traced ones),
 * counting up to limit + 1: what vjp and vmap walk. */
int64_t mx_graph_size(mx_array *const *roots, int n, int64_t limit);
/* Allocates x's output (reshape and stop_gradient share in[0]'s buffer) and runs its
 * kernel on in[]: one node's step of mx_eval, shared with tape replay. On failure x has
 * no buffer and the message names the op. */
mx_status mx_node_compute(mx_array *x, mx_array *const *in);
/* Drops a's inputs; with dispose, also its buffer (a later read fails). */
void mx_graph_detach(mx_array *a, int dispose);
/* a's buffer, retained, if a is READY; NULL if it was disposed. */
mx_buffer *mx_acquire_buffer(mx_array *a);
/* Guards graph structure (in[], state) for walks outside graph.c. */
void mx_graph_lock(void);
void mx_graph_unlock(void);

/* ---- engine threads (exec.c): deep native code off the caller's stack ---------- */
#define MX_ENGINE_STACK ((size_t)32 << 20) /* reserved, touched only as used */
typedef struct mx_task mx_task;
typedef mx_status (*mx_task_fn)(void *ctx);
/* Starts fn(ctx) on an engine thread; ctx_free(ctx) runs when the task is done
 * and released (so an abandoned task still frees its context). */
mx_status mx_task_start(mx_task_fn fn, void *ctx, void (*ctx_free)(void *), mx_task **out);
/* Waits up to timeout_ns (< 0: forever); whether the task has finished. */
int mx_task_wait(mx_task *t, int64_t timeout_ns);
/* Waits for the task, releases it and returns its status (its message as mx_last_error). */
mx_status mx_task_finish(mx_task *t);
/* Cancels the task and releases it without waiting. */
void mx_task_abandon(mx_task *t);
/* Releases the task without waiting; it runs to completion. */
void mx_task_detach(mx_task *t);
/* fn(ctx) on an engine thread, waiting for it (directly when already on one). */
mx_status mx_run_engine(mx_task_fn fn, void *ctx);
/* For code running in a task: the cancel flag (NULL off engine threads) and whether it is set. */
const _Atomic int32_t *mx_cancel_flag(void);
int mx_cancelled(void);
int mx_on_engine_thread(void);

/* ---- threads (pool.c): large kernels split across cores ---------------------- */
typedef void (*mx_range_fn)(void *ctx, int64_t lo, int64_t hi);
/* Runs fn over [0, n) in chunks; serial when n < grain or the pool is busy.
 * Chunks not yet started are skipped once the calling task is cancelled. */
void mx_parallel_for(int64_t n, int64_t grain, mx_range_fn fn, void *ctx);
int mx_num_threads(void);

/* ---- op constructors (ops.c, ops_shape.c) ------------------------------------ */
/* All return MX_OK and a new reference in *out, or a status with a message. */
mx_status mx_as_type(mx_array *a, mx_dtype t, mx_array **out);
mx_status mx_full(mx_dtype t, int ndim, const int64_t *shape, double value, mx_array **out);
mx_status mx_iota(mx_dtype t, int ndim, const int64_t *shape, int axis, mx_array **out);
mx_status mx_arange(mx_dtype t, double start, double step, int64_t n, mx_array **out);
mx_status mx_linspace(mx_dtype t, double start, double stop, int64_t n, int endpoint, mx_array **out);
mx_status mx_eye(mx_dtype t, int64_t n, int64_t m, mx_array **out);
mx_status mx_unary(mx_op op, mx_array *a, mx_array **out);
mx_status mx_binary(mx_op op, mx_array *a, mx_array *b, mx_array **out);
mx_status mx_select(mx_array *pred, mx_array *on_true, mx_array *on_false, mx_array **out);
/* ops_bitwise.c: a's bytes read as dtype t of the same width (same shape). */
mx_status mx_bitcast(mx_array *a, mx_dtype t, mx_array **out);
mx_status mx_clip(mx_array *a, mx_array *lo, mx_array *hi, mx_array **out);
/* axes: NULL/naxes<0 means all axes. */
mx_status mx_reduce(mx_op op, mx_array *a, const int *axes, int naxes, int keep, mx_array **out);
mx_status mx_scan(mx_op op, mx_array *a, int axis, int reverse, mx_array **out);
mx_status mx_reshape(mx_array *a, int ndim, const int64_t *shape, mx_array **out);
mx_status mx_transpose(mx_array *a, const int *perm, mx_array **out);
mx_status mx_broadcast_to(mx_array *a, int ndim, const int64_t *shape, mx_array **out);
mx_status mx_squeeze(mx_array *a, const int *axes, int naxes, mx_array **out);
mx_status mx_new_axis(mx_array *a, int axis, mx_array **out);
mx_status mx_concatenate(mx_array *const *arrays, int n, int axis, mx_array **out);
mx_status mx_stack(mx_array *const *arrays, int n, int axis, mx_array **out);
mx_status mx_slice(mx_array *a, const int64_t *start, const int64_t *stop, const int64_t *stride, mx_array **out);
mx_status mx_take(mx_array *a, mx_array *indices, int axis, mx_array **out);
mx_status mx_take_along_axis(mx_array *a, mx_array *indices, int axis, mx_array **out);
mx_status mx_gather(mx_array *a, mx_array *indices, mx_array **out);
mx_status mx_indexed_add(mx_array *a, mx_array *indices, mx_array *updates, mx_array **out);
mx_status mx_indexed_put(mx_array *a, mx_array *indices, mx_array *updates, mx_array **out);
mx_status mx_pad(mx_array *a, mx_array *value, const int64_t *lo, const int64_t *hi, const int64_t *interior,
                 mx_array **out);
mx_status mx_reverse(mx_array *a, const int *axes, int naxes, mx_array **out);
mx_status mx_sort(mx_array *a, int axis, int descending, mx_array **out);
mx_status mx_argsort(mx_array *a, int axis, int descending, mx_array **out);
mx_status mx_matmul(mx_array *a, mx_array *b, mx_array **out);
/* MATMUL params flags: in[0] is stored [..., k, m] (TRANS_A) or in[1] [..., n, k] (TRANS_B); mx_matmul
 * sets them for an operand that is a pending transpose of the last two axes, so no copy is made. */
enum { MX_MATMUL_TRANS_A = 1, MX_MATMUL_TRANS_B = 2 };

/* ---- transforms (autodiff.c) ---- */
/* A traced alias of a: the variable a gradient is taken with respect to. */
mx_status mx_trace_input(mx_array *a, mx_array **out);
/* An untraced alias: no gradient flows through it. */
mx_status mx_stop_gradient(mx_array *a, mx_array **out);
/* Cotangents of wrt[] given outputs and their cotangents (reverse mode). */
mx_status mx_vjp(mx_array *const *outs, mx_array *const *cots, int n_out, mx_array *const *wrt, int n_wrt,
                 mx_array **grads);

/* Replays the graph from placeholders holders[] (traced, per-example shapes) to
 * outs[] on inputs[] (the same with a leading batch axis of size B). results[i]
 * carries the batch axis first when out_batched[i] is set. */
mx_status mx_vmap(mx_array *const *outs, int n_out, mx_array *const *holders, mx_array *const *inputs, int n_in,
                  int64_t B, mx_array **results, int *out_batched);

/* ---- compile (compile.c) ---- */
/* A compiled function's traced input: a PENDING node that cannot be evaluated
 * (its kernel raises "[compile] ... needs a value while tracing"). */
mx_status mx_placeholder(mx_dtype t, int ndim, const int64_t *shape, mx_array **out);

/* A tape: the graph between placeholders and outputs, captured once and replayed
 * with new inputs. Capture folds parameter-free subgraphs into constants (it
 * evaluates them: run it where an eval may run deep nodes), merges common
 * subexpressions and equal small constants, and plans buffers: an intermediate
 * goes back to the allocator's cache after its last reader. */
typedef struct mx_tape mx_tape;
mx_status mx_tape_capture(mx_array *const *holders, int n_in, mx_array *const *outs, int n_out, mx_tape **out);
void mx_tape_retain(mx_tape *t);
void mx_tape_release(mx_tape *t);
/* Replays on inputs (READY, or evaluated first) of the holders' dtypes and shapes;
 * results[] are new READY arrays. Checks cancellation between instructions; with
 * budget_ns > 0, stops with MX_EYIELD once past it (nothing is kept: run it again). */
mx_status mx_tape_run(mx_tape *t, mx_array *const *inputs, int n_in, int64_t budget_ns, mx_array **results);
/* Replays t on raw element buffers, for C callers replaying a tape per step (samplers):
 * in[i] holds input i's elements (dtype and shape as traced), out[j] receives output j's
 * (out must not overlap in). Reads and writes them in place and allocates nothing after
 * the first call. No array is created and no budget applies: call it from an engine thread. */
mx_status mx_tape_run_raw(mx_tape *t, const void *const *in, void *const *out);
/* A tape's inputs and outputs as traced (dtype, shape, size; no buffer); NULL past the end. */
const mx_array *mx_tape_input(const mx_tape *t, int i);
const mx_array *mx_tape_output(const mx_tape *t, int j);
typedef struct {
  int n_inputs, n_outputs, n_instructions, n_constants;
  int folded; /* pending nodes evaluated at capture (parameter-free subgraphs) */
  int merged; /* nodes and constants dropped as duplicates or aliases (CSE, stop_gradient) */
  int deep;   /* an instruction must run on an engine thread (mx_op_is_deep) */
  int64_t cost;  /* per replay, in mx_pending_cost's units */
  int64_t bytes; /* the tape's structures and its constants' buffers */
  int noops;     /* algebraic no-ops removed (x * 1, x - 0, -(-x), identity casts/broadcasts, ...) */
  int dead;      /* instructions dropped because nothing reads them */
  int groups;    /* fused groups: runs of elementwise instructions replayed block by block */
  int fused;     /* instructions inside those groups */
  int64_t arena_bytes; /* one replay context's planned intermediates */
  int fast;            /* instructions on the small-array fast path (inline f64/bool loops) */
} mx_tape_info;
void mx_tape_info_get(const mx_tape *t, mx_tape_info *info);
mx_op mx_tape_instruction_op(const mx_tape *t, int k);
/* The fused group instruction k belongs to (groups are runs of consecutive instructions), -1 if none. */
int mx_tape_instruction_group(const mx_tape *t, int k);
/* Whether instruction k runs on the small-array fast path (an inline f64/bool loop, compile.c). */
int mx_tape_instruction_fast(const mx_tape *t, int k);
/* All live tapes: how many, and their bytes (as mx_tape_info.bytes). */
void mx_tape_totals(int64_t *count, int64_t *bytes);

/* ---- random (ops_random.c) ---- */
/* A draw of shape `shape` and dtype t from key (u32[2]) by one of the RANDOM_* ops;
 * params broadcast to shape: BITS [offset u32[2]] (optional block offset), NORMAL none,
 * TRUNCATED_NORMAL lower, upper; GAMMA alpha; POISSON rate; RANDINT low, high (integers).
 * Flags: MX_RANDOM_OPEN (BITS as floats in (0, 1)), MX_RANDOM_LOG (GAMMA: log of the draw). */
enum { MX_RANDOM_OPEN = 1, MX_RANDOM_LOG = 2 };
mx_status mx_random(mx_op op, mx_array *key, int n_params, mx_array *const *params, mx_dtype t, int flags, int ndim,
                    const int64_t *shape, mx_array **out);

/* ---- linalg (ops_linalg.c) ---- */
/* Matrices are the last two axes; leading axes are a batch. Ints and bool
 * compute in f32. LAPACK failures (not positive definite, singular, no
 * convergence) are MX_ECOMPUTE at eval, naming the matrix in the batch. */
mx_status mx_cholesky(mx_array *a, mx_array **out); /* lower L, a = L L^T; reads a's lower triangle */
/* a x = b; b is a vector [n], a batch of vectors of a's shape minus the last axis, or [..., n, k]; batch axes broadcast. */
mx_status mx_solve(mx_array *a, mx_array *b, mx_array **out);
/* op(a) x = b (left_side) or x op(a) = b, a triangular; only its lower or upper triangle is read. */
mx_status mx_triangular_solve(mx_array *a, mx_array *b, int lower, int left_side, int transpose_a, int unit_diagonal,
                              mx_array **out);
mx_status mx_inv(mx_array *a, mx_array **out);
mx_status mx_det(mx_array *a, mx_array **out);
mx_status mx_slogdet(mx_array *a, mx_array **sign, mx_array **logabsdet);
mx_status mx_qr(mx_array *a, mx_array **q, mx_array **r); /* reduced: q [..., m, k], r [..., k, n] */
mx_status mx_svd(mx_array *a, int full_matrices, mx_array **u, mx_array **s, mx_array **vt);
mx_status mx_svdvals(mx_array *a, mx_array **s); /* descending */
mx_status mx_eigh(mx_array *a, mx_array **w, mx_array **v); /* ascending w; reads a's lower triangle */
mx_status mx_eigvalsh(mx_array *a, mx_array **w);
/* numpy.linalg.norm: kind DEFAULT (2-norm / Frobenius), FRO, NUC, or P with order p (may be +-INFINITY). */
typedef enum { MX_NORM_DEFAULT = 0, MX_NORM_FRO, MX_NORM_NUC, MX_NORM_P } mx_norm_kind;
mx_status mx_norm(mx_array *a, mx_norm_kind kind, double p, const int *axes, int naxes, int keep, mx_array **out);
mx_status mx_cross(mx_array *a, mx_array *b, int axis, mx_array **out);
mx_status mx_outer(mx_array *a, mx_array *b, mx_array **out); /* of the flattened inputs */
mx_status mx_trace(mx_array *a, int64_t offset, mx_array **out);
mx_status mx_diagonal(mx_array *a, int64_t offset, mx_array **out); /* [..., m, n] -> [..., d] */
mx_status mx_diag(mx_array *v, int64_t k, mx_array **out);           /* [..., n] -> [..., n + |k|, n + |k|] */

/* ---- special (ops_special.c) ---- */
/* Regularized incomplete beta I_x(a, b), elementwise; a, b, x broadcast and promote to float. */
mx_status mx_betainc(mx_array *a, mx_array *b, mx_array *x, mx_array **out);

/* ---- complex and fft (ops_complex.c, ops_fft.c, prim/complex.c, prim/fft_kernels.c) ---- */
/* Along one axis (numpy's np.fft): n is the transform length (the input is cropped or
 * zero-padded to it; n <= 0 means the input's length, for irfft 2 (m - 1)); norm is
 * numpy's: BACKWARD scales the inverse by 1/n, ORTHO both by 1/sqrt(n), FORWARD the
 * forward by 1/n. fft: real inputs become complex (f64 -> c128, others c64); rfft: real
 * in, n/2 + 1 complex out; irfft: n/2 + 1 complex in (cropped or padded), n real out. */
typedef enum { MX_FFT_BACKWARD = 0, MX_FFT_ORTHO, MX_FFT_FORWARD } mx_fft_norm;
mx_status mx_fft(mx_array *a, int axis, int64_t n, int inverse, mx_fft_norm norm, mx_array **out);
mx_status mx_rfft(mx_array *a, int axis, int64_t n, mx_fft_norm norm, mx_array **out);
mx_status mx_irfft(mx_array *a, int axis, int64_t n, mx_fft_norm norm, mx_array **out);
/* An FFT node on an input that already has the transform's length along axis, with an
 * explicit scale (op FFT, RFFT or IRFFT; n is the real length for RFFT/IRFFT): the vjp rules use it. */
mx_status mx_fft_node(mx_op op, mx_array *x, int axis, int64_t n, int inverse, double scale, mx_array **out);


/* ---- samplers (sampler.c): NUTS, static HMC and MALA with Stan's warmup, all in C ---- */
/* A target: log density and its gradient at q (d values). A returned MX_ECOMPUTE or
 * MX_EINVAL rejects the point (a divergence, as an exception in Stan); any other
 * failure (out of memory, cancelled) ends the run. lp may be -inf or NaN. */
typedef mx_status (*mx_logp_grad_fn)(void *ctx, const double *q, double *lp, double *grad);
typedef enum { MX_SAMPLER_NUTS = 0, MX_SAMPLER_HMC, MX_SAMPLER_MALA } mx_sampler_algorithm;
typedef enum { MX_METRIC_DIAG = 0, MX_METRIC_DENSE } mx_metric_kind;
/* One iteration's statistics, as Stan reports them (HMC and MALA: tree_depth 0). */
typedef struct {
  double accept_stat, step_size, energy;
  int32_t tree_depth, n_leapfrog;
  uint8_t divergent, nan_energy;
} mx_sampler_stats;
typedef void (*mx_sampler_iteration_fn)(void *ctx, int64_t iteration, const mx_sampler_stats *st);
typedef struct {
  mx_sampler_algorithm algorithm;
  int64_t d, warmup, samples;
  const double *q0;         /* d values (copied) */
  uint32_t key[2];          /* an Mx.Random key */
  double target_accept;     /* dual averaging's delta, in (0, 1) */
  double step_size;         /* the first step size (and mu = log(10 step_size)) */
  int max_depth;            /* NUTS: at most 2^max_depth leapfrogs, 1..30 */
  int n_leapfrog;           /* HMC: leapfrogs per transition */
  int adapt_metric;         /* learn the metric in Stan's windows during warmup */
  mx_metric_kind metric;
  const double *inv_metric; /* NULL: unit; diag: d positive values; dense: d x d SPD, row-major (copied) */
  mx_logp_grad_fn logp_grad;
  void *target;
  mx_sampler_iteration_fn on_iteration; /* optional, called after each iteration on the sampler's thread */
  void *iteration_ctx;
} mx_sampler_config;
typedef struct mx_sampler mx_sampler;
/* Validates cfg and allocates everything the run needs (counted in mx_memory_stats). */
mx_status mx_sampler_new(const mx_sampler_config *cfg, mx_sampler **out);
/* Runs warmup and sampling; MX_ECANCELLED once mx_sampler_cancel or the task's cancel flag is set. */
mx_status mx_sampler_run(mx_sampler *s);
void mx_sampler_cancel(mx_sampler *s); /* thread-safe; the run stops at its next leapfrog */
void mx_sampler_free(mx_sampler *s);
int64_t mx_sampler_iterations_done(const mx_sampler *s);
const double *mx_sampler_draws(const mx_sampler *s);            /* samples x d, unconstrained */
const mx_sampler_stats *mx_sampler_stats_of(const mx_sampler *s); /* warmup + samples, in order */
double mx_sampler_step_size(const mx_sampler *s);               /* the adapted (or given) step size */
const double *mx_sampler_inv_metric(const mx_sampler *s);       /* d (diag) or d x d (dense) values */
const double *mx_sampler_position(const mx_sampler *s); /* d: the chain's point after its last iteration */
/* The tape target: tape maps f64[d] to (f64[] lp, f64[d] grad). Check it once with
 * mx_sampler_check_tape; mx_tape_logp_grad replays it (ctx: the mx_tape). */
mx_status mx_sampler_check_tape(const mx_tape *t, int64_t d);
mx_status mx_tape_logp_grad(void *tape, const double *q, double *lp, double *grad);
/* ---- generated C for tapes (jit.c): the second execution tier ---- */
/* A tape's structure for the generator: slots (inputs [0, n_in), constants with their
 * buffers, instruction outputs), instruction k computes slots[ins_slot[k]] from slots
 * in_idx[in_off[k] .. in_off[k + 1]). */
typedef struct {
  int n_in, n_out, n_ins, n_slots;
  const mx_array *slots;
  const int32_t *ins_slot, *in_off, *in_idx, *out_slot;
  const uint8_t *is_const;
} mx_tape_view;
void mx_tape_view_get(const mx_tape *t, mx_tape_view *v);

/* The generated function: P[slot] data pointers (inputs and constants set by the caller;
 * it sets those it hands to call), O[j] output j's elements, call(ctx, k) runs instruction
 * k's kernel (instructions with no rule), S the tape's scratch arena. Nonzero: an mx_status. */
typedef struct mx_jit_host mx_jit_host;
typedef int (*mx_jit_fn)(void **P, void *const *O, const mx_jit_host *H, int (*call)(void *ctx, int k), void *ctx,
                         char *S);
typedef struct mx_jit mx_jit;
typedef enum { MX_TIER_INTERPRETER = 0, MX_TIER_COMPILING, MX_TIER_NATIVE, MX_TIER_FAILED } mx_tier;
typedef struct {
  mx_tier tier;
  int64_t wall_ns, cpu_ns; /* compile (0 on a disk-cache hit) */
  int cache_hit;           /* loaded from the disk cache */
  const char *reason;      /* FAILED: why; otherwise a note (cache refused, no compiler) or "" */
} mx_jit_info;
/* C source for t's instructions (malloc'd, NUL-terminated) and the scratch bytes it needs. */
mx_status mx_jit_source(const mx_tape *t, char **src, size_t *scratch_bytes);
/* The environment the tier reads (the BEAM's os:putenv does not reach getenv, so the NIF
 * passes Elixir's view); a NULL field: unset. */
typedef struct {
  const char *mx_jit, *cc, *xdg_cache_home, *home, *tmpdir, *path;
} mx_jit_env;
/* Starts generating and compiling t's C off the calling thread (MX_JIT=0 or no compiler:
 * nothing, the interpreter stays). Later replays use the native code once it is loaded.
 * env NULL: the process environment. */
mx_status mx_tape_jit_start(mx_tape *t, const mx_jit_env *env);
/* Waits up to timeout_ns for the compile to end; the tier then. */
mx_tier mx_tape_jit_wait(mx_tape *t, int64_t timeout_ns);
void mx_tape_jit_info(mx_tape *t, mx_jit_info *info);
/* For compile.c: the native function (NULL until loaded) and its scratch size; the host table. */
mx_jit_fn mx_jit_native(mx_jit *j, size_t *scratch_bytes);
const mx_jit_host *mx_jit_host_table(void);
void mx_jit_free(mx_jit *j);
/* compile.c: installs j on t once (0 if t already has one); t's jit, or NULL. */
int mx_tape_jit_install(mx_tape *t, mx_jit *j);
mx_jit *mx_tape_jit(const mx_tape *t);

/* ---- linalg additions (ops_linalg.c): LU, complete QR, general eigenproblem ---- */
/* P A = L U for square a: the packed L\U factors [..., n, n] (L's unit diagonal implied) and
 * perm s64 [..., n] with (P A)[i] = A[perm[i]]. */
mx_status mx_lu(mx_array *a, mx_array **factors, mx_array **perm);
/* QR with complete: q [..., m, m] and r [..., m, n]; else as mx_qr. */
mx_status mx_qr_mode(mx_array *a, int complete, mx_array **q, mx_array **r);
/* Eigenvalues w [..., n] and right eigenvectors v [..., n, n] (columns, unit 2-norm) of a general
 * real a, complex (c64 for f32, c128 for f64), in LAPACK geev's order; v NULL: values only. */
mx_status mx_eig(mx_array *a, mx_array **w, mx_array **v);

/* ---- convolution and window reductions (ops_conv.c, prim/conv.c) ---- */
/* Nx.conv: x [N, C, s...], w [O, C / feature_groups, k...] (S = rank - 2 spatial axes, 1..6);
 * per spatial axis: stride, padding lo/hi (negative crops), input and kernel dilation (>= 1).
 * feature_groups splits C and O; batch_groups splits N (group-major) and O; at most one is > 1.
 * Ints and bool compute in f32, f16/bf16 in f32 (rounded back); c64/c128 supported. */
mx_status mx_conv(mx_array *x, mx_array *w, const int64_t *strides, const int64_t *pad_lo, const int64_t *pad_hi,
                  const int64_t *input_dilation, const int64_t *kernel_dilation, int64_t feature_groups,
                  int64_t batch_groups, mx_array **out);
/* op WINDOW_SUM/PRODUCT/MAX/MIN over windows of x (Nx.window_*): per axis a window size, stride,
 * padding lo/hi (filled with 0, 1, -inf or +inf: the type's extremes for integers) and dilation. */
mx_status mx_window(mx_op op, mx_array *x, const int64_t *window, const int64_t *strides, const int64_t *pad_lo,
                    const int64_t *pad_hi, const int64_t *dilations, mx_array **out);
/* Nx.window_scatter_max/min (op WINDOW_SCATTER_MAX/MIN): init + the source values added at each window's
 * last max (min) of x padded with -inf (+inf); dilations 1. */
mx_status mx_window_scatter(mx_op op, mx_array *x, mx_array *source, mx_array *init, const int64_t *window,
                            const int64_t *strides, const int64_t *pad_lo, const int64_t *pad_hi, mx_array **out);

/* ---- io (Mx.IO) ---------------------------------------------------------------- */
/* An array of dtype and shape whose bytes are read from path at offset, straight into its
 * buffer (no intermediate copy). MX_EINVAL names the file when it is short or unreadable. */
mx_status mx_from_file(const char *path, uint64_t offset, mx_dtype dtype, int ndim, const int64_t *shape, mx_array **out);

#endif

/* ---- quantization as MLX does it (ops_quant.c, prim/quant.c) ---- */
/* MLX's affine quantization of f32/f64 w [..., K] in groups of group_size (32, 64, 128) along the last
 * axis, bits 2, 4 or 8: w_q u32 [..., K*bits/32] (32/bits values a word, the first in the low bits),
 * scales and biases [..., K/group_size] in w's dtype; w ~ scale * q + bias. */
mx_status mx_quantize(mx_array *w, int64_t group_size, int64_t bits, mx_array **w_q, mx_array **scales,
                      mx_array **biases);
mx_status mx_dequantize(mx_array *w_q, mx_array *scales, mx_array *biases, int64_t group_size, int64_t bits,
                        mx_array **out);
/* x [..., K] against the quantized w: [N, K] with transpose (x @ w^T), [K, N] without -> [..., N]. */
/* w may have batch axes (w_q [..., N, K/pack], scales/biases [..., N, K/gs]): x [..., M, K] (a vector is one
 * row) -> [broadcast batch..., M, N], batch axes broadcast as matmul's. */
mx_status mx_quantized_matmul(mx_array *x, mx_array *w_q, mx_array *scales, mx_array *biases, int transpose,
                              int64_t group_size, int64_t bits, mx_array **out);

/* ---- fused scaled-dot-product attention (ops_sdpa.c, prim/sdpa.c) ---- */
/* softmax(scale q k^T + mask) v: q [..., Hq, Lq, D], k [..., Hkv, Lk, D], v [..., Hkv, Lk, Dv] of one float
 * dtype, Hq a multiple of Hkv (grouped-query attention), leading axes broadcast (a lower rank gets leading
 * unit axes); mask NULL, or bool (true
 * where allowed) or float (added), broadcastable to [..., Hq, Lq, Lk]; causal: query i sees keys j <= i + Lk - Lq.
 * A query that sees no key gets NaN. -> [..., Hq, Lq, Dv]. */
mx_status mx_scaled_dot_product_attention(mx_array *q, mx_array *k, mx_array *v, mx_array *mask, double scale,
                                          int causal, mx_array **out);
