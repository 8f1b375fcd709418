/* mx_nif.c: the only code that knows the BEAM. It decodes and validates
 * every argument, calls the engine, and turns a failed status into an
 * exception (Mx.Error for engine errors, ArgumentError for malformed Elixir
 * terms). Nothing here may crash the VM on any input.
 *
 * Array terms are resource binaries whose size is the array's byte size, so
 * the bytes an array holds count against the owning process's binary heap
 * and the BEAM's garbage collector runs when a process holds much array
 * memory (DESIGN.md decision 3). The binary's bytes are a shared read-only
 * zero page mapping: the data itself lives in the engine's buffers. */
#include <erl_nif.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <pthread.h>
#include <time.h>

#include "../mx.h"

typedef struct {
  mx_array *a;
} array_res;

static ErlNifResourceType *ARRAY;
static ERL_NIF_TERM atom_ok, atom_nil, atom_true, atom_false, atom_error;
static ERL_NIF_TERM atom_struct, atom_exception, atom_message, atom_mx_error, atom_argument_error;
static ERL_NIF_TERM dtype_atoms[MX_DTYPE_COUNT];
static ERL_NIF_TERM op_atoms[MX_OP_COUNT];

#define ZERO_REGION_BYTES ((size_t)1 << 36) /* 64 GiB reserved, never touched: reads see zeros */
static const unsigned char *zero_region;
static size_t zero_region_bytes;

/* Below this much pending work (elements touched, weighted by op cost: one unit
 * is ~0.1 ns) eval runs inline on the calling scheduler, ~200 us at most; above
 * it, on a dirty CPU scheduler, whose ~11 us round trip is then < 5%. See bench/RESULTS.md. */
static _Atomic int64_t dirty_threshold = 1 << 21;

/* ---- errors ---------------------------------------------------------------- */

static ERL_NIF_TERM raise_with(ErlNifEnv *env, ERL_NIF_TERM module, const char *msg) {
  ErlNifBinary bin;
  size_t n = strlen(msg);
  if (!enif_alloc_binary(n, &bin)) return enif_raise_exception(env, atom_error);
  memcpy(bin.data, msg, n);
  ERL_NIF_TERM keys[3] = {atom_struct, atom_exception, atom_message};
  ERL_NIF_TERM vals[3] = {module, atom_true, enif_make_binary(env, &bin)};
  ERL_NIF_TERM map;
  if (!enif_make_map_from_arrays(env, keys, vals, 3, &map)) return enif_raise_exception(env, atom_error);
  return enif_raise_exception(env, map);
}

static ERL_NIF_TERM raise_mx(ErlNifEnv *env) { return raise_with(env, atom_mx_error, mx_last_error()); }

static ERL_NIF_TERM badarg(ErlNifEnv *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static ERL_NIF_TERM badarg(ErlNifEnv *env, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return raise_with(env, atom_argument_error, msg);
}

/* ---- decoding ---------------------------------------------------------------- */

/* An array's ref is {handle, weight}: handle a resource term (hashing and
 * term_to_binary see a small reference); weight a resource binary as long as the
 * array's bytes, so the owner's GC counts them, seen through a sub-binary of at
 * most WEIGHT_BYTES (over 64: the GC turns smaller sub-binaries into copies and
 * drops the reference). */
#define WEIGHT_BYTES 128
static int get_array(ErlNifEnv *env, ERL_NIF_TERM t, mx_array **a) {
  array_res *r;
  const ERL_NIF_TERM *e;
  int arity;
  if (!enif_get_tuple(env, t, &arity, &e) || arity != 2 || !enif_get_resource(env, e[0], ARRAY, (void **)&r) || !r->a)
    return 0;
  *a = r->a;
  return 1;
}

static int get_dtype(ERL_NIF_TERM t, mx_dtype *d) {
  for (int i = 0; i < MX_DTYPE_COUNT; i++)
    if (enif_is_identical(t, dtype_atoms[i])) {
      *d = (mx_dtype)i;
      return 1;
    }
  return 0;
}

static ERL_NIF_TERM badarg(ErlNifEnv *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "[unary] unknown op :foo; Mx.NIF.op_names() lists the primitives" */
static ERL_NIF_TERM unknown_op(ErlNifEnv *env, const char *family, ERL_NIF_TERM t) {
  char name[64] = "?";
  if (!enif_get_atom(env, t, name, sizeof name, ERL_NIF_LATIN1)) snprintf(name, sizeof name, "(not an atom)");
  return badarg(env, "[%s] unknown op :%s; Mx.NIF.op_names() lists the primitives", family, name);
}

static int get_op(ERL_NIF_TERM t, mx_op *op) {
  for (int i = 0; i < MX_OP_COUNT; i++)
    if (t == op_atoms[i]) {
      *op = (mx_op)i;
      return 1;
    }
  return 0;
}

/* A tuple (or list) of at most MX_MAX_RANK integers. */
static int get_ints(ErlNifEnv *env, ERL_NIF_TERM t, int64_t *out, int *n) {
  const ERL_NIF_TERM *elems;
  int arity;
  if (enif_get_tuple(env, t, &arity, &elems)) {
    if (arity > MX_MAX_RANK) return 0;
    for (int i = 0; i < arity; i++) {
      ErlNifSInt64 v;
      if (!enif_get_int64(env, elems[i], &v)) return 0;
      out[i] = v;
    }
    *n = arity;
    return 1;
  }
  unsigned len;
  if (!enif_get_list_length(env, t, &len) || len > MX_MAX_RANK) return 0;
  ERL_NIF_TERM head, tail = t;
  for (unsigned i = 0; i < len; i++) {
    ErlNifSInt64 v;
    if (!enif_get_list_cell(env, tail, &head, &tail) || !enif_get_int64(env, head, &v)) return 0;
    out[i] = v;
  }
  *n = (int)len;
  return 1;
}

static int get_axes(ErlNifEnv *env, ERL_NIF_TERM t, int *axes, int *n) {
  int64_t v[MX_MAX_RANK];
  if (enif_is_identical(t, atom_nil)) {
    *n = -1;
    return 1;
  }
  if (!get_ints(env, t, v, n)) return 0;
  for (int i = 0; i < *n; i++) {
    if (v[i] < -MX_MAX_RANK - 1 || v[i] > MX_MAX_RANK) return 0;
    axes[i] = (int)v[i];
  }
  return 1;
}

static int get_int(ErlNifEnv *env, ERL_NIF_TERM t, int *out) {
  ErlNifSInt64 v;
  if (!enif_get_int64(env, t, &v) || v < INT32_MIN || v > INT32_MAX) return 0;
  *out = (int)v;
  return 1;
}

static int get_bool(ERL_NIF_TERM t, int *out) {
  if (enif_is_identical(t, atom_true)) *out = 1;
  else if (enif_is_identical(t, atom_false)) *out = 0;
  else return 0;
  return 1;
}

/* A number, or :nan / :infinity / :neg_infinity. */
static int get_number(ErlNifEnv *env, ERL_NIF_TERM t, double *out) {
  ErlNifSInt64 i;
  char atom[16];
  if (enif_get_double(env, t, out)) return 1;
  if (enif_get_int64(env, t, &i)) {
    *out = (double)i;
    return 1;
  }
  if (enif_get_atom(env, t, atom, sizeof atom, ERL_NIF_LATIN1)) {
    if (!strcmp(atom, "nan")) *out = NAN;
    else if (!strcmp(atom, "infinity")) *out = INFINITY;
    else if (!strcmp(atom, "neg_infinity")) *out = -INFINITY;
    else return 0;
    return 1;
  }
  return 0;
}

/* ---- encoding ---------------------------------------------------------------- */

static ERL_NIF_TERM shape_term(ErlNifEnv *env, const mx_array *a) {
  ERL_NIF_TERM dims[MX_MAX_RANK];
  for (int i = 0; i < a->ndim; i++) dims[i] = enif_make_int64(env, a->shape[i]);
  return enif_make_tuple_from_array(env, dims, (unsigned)a->ndim);
}

/* {ref, shape, dtype, id}; takes ownership of the reference `a`. */
static ERL_NIF_TERM wrap(ErlNifEnv *env, mx_array *a) {
  array_res *r = enif_alloc_resource(ARRAY, sizeof *r);
  if (!r) {
    mx_release(a);
    return raise_with(env, atom_mx_error, "out of memory allocating an array handle");
  }
  r->a = a;
  size_t bytes = mx_nbytes(a);
  if (bytes > zero_region_bytes) bytes = zero_region_bytes;
  ERL_NIF_TERM weight = enif_make_resource_binary(env, r, zero_region ? zero_region : (const void *)"", zero_region ? bytes : 0);
  ERL_NIF_TERM ref = enif_make_tuple2(env, enif_make_resource(env, r), bytes <= WEIGHT_BYTES ? weight : enif_make_sub_binary(env, weight, 0, WEIGHT_BYTES));
  enif_release_resource(r);
  /* A process holding much array memory must get to its GC, which runs when it is
   * scheduled out: charge big arrays against the timeslice (1% per 64 KiB). */
  if (bytes >= 65536) enif_consume_timeslice(env, bytes >= ((size_t)100 << 16) ? 100 : (int)(bytes >> 16));
  /* The node's address as an id: array terms compare equal only when they are the same array
   * (the resource binary's bytes are the shared zero mapping, equal for every array). */
  return enif_make_tuple4(env, ref, shape_term(env, a), dtype_atoms[a->dtype], enif_make_uint64(env, (uint64_t)(uintptr_t)a));
}

/* Takes &out so the status is computed before *out is read. */
static ERL_NIF_TERM result(ErlNifEnv *env, mx_status st, mx_array **out) {
  if (st != MX_OK) return raise_mx(env);
  return wrap(env, *out);
}

static _Atomic int probe_on; /* the scheduler probe, below the NIFs */
static int64_t thread_cpu_ns(void);
static void probe_record(const char *name, int64_t ns);

/* Runs where the owner's GC runs (a normal scheduler): past 250 nodes (~1 us each at worst), the rest of
 * a graph is freed on an engine thread, and so are big buffers (alloc.c). */

static void array_dtor(ErlNifEnv *env, void *obj) {
  (void)env;
  array_res *r = obj;
  int probing = atomic_load_explicit(&probe_on, memory_order_relaxed);
  int64_t t0 = probing ? thread_cpu_ns() : 0;
  mx_release_bounded(r->a, 250);
  if (probing) probe_record("array_destructor", thread_cpu_ns() - t0);
  r->a = NULL;
}

#define ARG_ARRAY(i, name, op)                                                                          \
  mx_array *name;                                                                                       \
  if (!get_array(env, argv[i], &name))                                                                  \
    return badarg(env, "[%s] argument %d must be an Mx array reference (got another term)", op, i + 1);

/* ---- creation ------------------------------------------------------------------ */

static ERL_NIF_TERM from_binary_now(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ErlNifBinary bin;
  mx_dtype t;
  int64_t shape[MX_MAX_RANK];
  int nd;
  if (!enif_inspect_binary(env, argv[0], &bin)) return badarg(env, "[from_binary] data must be a binary");
  if (!get_dtype(argv[1], &t)) return badarg(env, "[from_binary] unknown dtype; use one of Mx.Type.names()");
  if (!get_ints(env, argv[2], shape, &nd)) return badarg(env, "[from_binary] shape must be a tuple of at most %d integers", MX_MAX_RANK);
  mx_array *out;
  return result(env, mx_from_data(t, nd, shape, bin.data, bin.size, &out), &out);
}

/* A copy into fresh memory (page faults included) was seen as slow as ~1 GB/s on a loaded
 * machine: it costs COPY_UNITS a byte, so copies past ~256 KB go to a dirty scheduler. */
#define COPY_UNITS 8

static ERL_NIF_TERM from_binary(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  ErlNifBinary bin;
  if (enif_inspect_binary(env, argv[0], &bin) && COPY_UNITS * (int64_t)bin.size > atomic_load(&dirty_threshold))
    return enif_schedule_nif(env, "from_binary_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, from_binary_now, argc, argv);
  return from_binary_now(env, argc, argv);
}

static ERL_NIF_TERM full(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_dtype t;
  int64_t shape[MX_MAX_RANK];
  int nd;
  double v;
  if (!get_dtype(argv[0], &t)) return badarg(env, "[full] unknown dtype");
  if (!get_ints(env, argv[1], shape, &nd)) return badarg(env, "[full] shape must be a tuple of at most %d integers", MX_MAX_RANK);
  if (!get_number(env, argv[2], &v)) return badarg(env, "[full] value must be a number, :nan, :infinity or :neg_infinity");
  mx_array *out;
  return result(env, mx_full(t, nd, shape, v, &out), &out);
}

static ERL_NIF_TERM iota(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_dtype t;
  int64_t shape[MX_MAX_RANK];
  int nd, axis = -1;
  if (!get_dtype(argv[0], &t)) return badarg(env, "[iota] unknown dtype");
  if (!get_ints(env, argv[1], shape, &nd)) return badarg(env, "[iota] shape must be a tuple of at most %d integers", MX_MAX_RANK);
  if (!enif_is_identical(argv[2], atom_nil) && (!get_int(env, argv[2], &axis) || axis < 0))
    return badarg(env, "[iota] axis must be nil or a non-negative integer");
  mx_array *out;
  return result(env, mx_iota(t, nd, shape, axis, &out), &out);
}

static ERL_NIF_TERM arange(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_dtype t;
  double start, step;
  ErlNifSInt64 n;
  if (!get_dtype(argv[0], &t)) return badarg(env, "[arange] unknown dtype");
  if (!get_number(env, argv[1], &start) || !get_number(env, argv[2], &step)) return badarg(env, "[arange] start and step must be numbers");
  if (!enif_get_int64(env, argv[3], &n) || n < 0) return badarg(env, "[arange] count must be a non-negative integer");
  mx_array *out;
  return result(env, mx_arange(t, start, step, n, &out), &out);
}

static ERL_NIF_TERM linspace(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_dtype t;
  double start, stop;
  ErlNifSInt64 n;
  int endpoint;
  if (!get_dtype(argv[0], &t)) return badarg(env, "[linspace] unknown dtype");
  if (!get_number(env, argv[1], &start) || !get_number(env, argv[2], &stop)) return badarg(env, "[linspace] start and stop must be numbers");
  if (!enif_get_int64(env, argv[3], &n) || n < 0) return badarg(env, "[linspace] count must be a non-negative integer");
  if (!get_bool(argv[4], &endpoint)) return badarg(env, "[linspace] endpoint must be a boolean");
  mx_array *out;
  return result(env, mx_linspace(t, start, stop, n, endpoint, &out), &out);
}

static ERL_NIF_TERM eye(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_dtype t;
  ErlNifSInt64 n, m;
  if (!get_dtype(argv[0], &t)) return badarg(env, "[eye] unknown dtype");
  if (!enif_get_int64(env, argv[1], &n) || !enif_get_int64(env, argv[2], &m) || n < 0 || m < 0)
    return badarg(env, "[eye] sizes must be non-negative integers");
  mx_array *out;
  return result(env, mx_eye(t, n, m, &out), &out);
}

/* ---- generic op NIFs: one per family, keyed by the op atom --------------------- */

static ERL_NIF_TERM unary(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_op op;
  if (!get_op(argv[0], &op)) return unknown_op(env, "unary", argv[0]);
  ARG_ARRAY(1, a, mx_ops[op].name);
  mx_array *out;
  return result(env, mx_unary(op, a, &out), &out);
}

/* A number operand as a rank-0 array, typed by Nx's weak-scalar rule against
 * the other operand: an integer takes its type (s64 against bool), a float its
 * float type or f32. Saves a NIF call and a term per scalar operand. */
static mx_status scalar_operand(ErlNifEnv *env, ERL_NIF_TERM t, const mx_array *other, mx_array **out) {
  double v;
  ErlNifSInt64 i;
  mx_dtype ot = (mx_dtype)other->dtype;
  int is_int = enif_get_int64(env, t, &i);
  if (!get_number(env, t, &v)) return mx_error(MX_EINVAL, "operand is not a number");
  mx_dtype type = is_int ? (ot == MX_BOOL ? MX_S64 : ot) : (mx_is_float(ot) ? ot : MX_F32);
  return mx_full(type, 0, NULL, v, out);
}

static ERL_NIF_TERM binary(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_op op;
  if (!get_op(argv[0], &op)) return unknown_op(env, "binary", argv[0]);
  mx_array *a = NULL, *b = NULL, *tmp = NULL;
  int ga = get_array(env, argv[1], &a), gb = get_array(env, argv[2], &b);
  if (!ga && !gb) return badarg(env, "[%s] needs at least one Mx array operand", mx_ops[op].name);
  if (!ga && scalar_operand(env, argv[1], b, &tmp)) return badarg(env, "[%s] operand 1 must be an Mx array or a number", mx_ops[op].name);
  if (!gb && scalar_operand(env, argv[2], a, &tmp)) return badarg(env, "[%s] operand 2 must be an Mx array or a number", mx_ops[op].name);
  mx_array *out;
  mx_status st = mx_binary(op, ga ? a : tmp, gb ? b : tmp, &out);
  mx_release(tmp);
  return result(env, st, &out);
}

static ERL_NIF_TERM as_type(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "as_type");
  mx_dtype t;
  if (!get_dtype(argv[1], &t)) return badarg(env, "[as_type] unknown dtype");
  mx_array *out;
  return result(env, mx_as_type(a, t, &out), &out);
}

static ERL_NIF_TERM bitcast_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "bitcast");
  mx_dtype t;
  if (!get_dtype(argv[1], &t)) return badarg(env, "[bitcast] unknown dtype");
  mx_array *out;
  return result(env, mx_bitcast(a, t, &out), &out);
}

static ERL_NIF_TERM select_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, p, "select");
  ARG_ARRAY(1, a, "select");
  ARG_ARRAY(2, b, "select");
  mx_array *out;
  return result(env, mx_select(p, a, b, &out), &out);
}

/* betainc(a, b, x): the regularized incomplete beta I_x(a, b); the three broadcast. */
static ERL_NIF_TERM betainc_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "betainc");
  ARG_ARRAY(1, b, "betainc");
  ARG_ARRAY(2, x, "betainc");
  mx_array *out;
  return result(env, mx_betainc(a, b, x, &out), &out);
}

static ERL_NIF_TERM clip(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "clip");
  ARG_ARRAY(1, lo, "clip");
  ARG_ARRAY(2, hi, "clip");
  mx_array *out;
  return result(env, mx_clip(a, lo, hi, &out), &out);
}

static ERL_NIF_TERM reduce(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_op op;
  int axes[MX_MAX_RANK], n, keep;
  if (!get_op(argv[0], &op)) return unknown_op(env, "reduce", argv[0]);
  ARG_ARRAY(1, a, mx_ops[op].name);
  if (!get_axes(env, argv[2], axes, &n)) return badarg(env, "[%s] axes must be nil or a list of at most %d integers", mx_ops[op].name, MX_MAX_RANK);
  if (!get_bool(argv[3], &keep)) return badarg(env, "[%s] keep_axes must be a boolean", mx_ops[op].name);
  mx_array *out;
  return result(env, mx_reduce(op, a, n < 0 ? NULL : axes, n, keep, &out), &out);
}

static ERL_NIF_TERM scan(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_op op;
  int axis, rev;
  if (!get_op(argv[0], &op)) return unknown_op(env, "scan", argv[0]);
  ARG_ARRAY(1, a, mx_ops[op].name);
  if (!get_int(env, argv[2], &axis)) return badarg(env, "[%s] axis must be an integer", mx_ops[op].name);
  if (!get_bool(argv[3], &rev)) return badarg(env, "[%s] reverse must be a boolean", mx_ops[op].name);
  mx_array *out;
  return result(env, mx_scan(op, a, axis, rev, &out), &out);
}

static ERL_NIF_TERM sort(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_op op;
  int axis, desc;
  if (!get_op(argv[0], &op) || (op != MX_OP_SORT && op != MX_OP_ARGSORT)) return badarg(env, "[sort] op must be :sort or :argsort");
  ARG_ARRAY(1, a, mx_ops[op].name);
  if (!get_int(env, argv[2], &axis)) return badarg(env, "[%s] axis must be an integer", mx_ops[op].name);
  if (!get_bool(argv[3], &desc)) return badarg(env, "[%s] descending must be a boolean", mx_ops[op].name);
  mx_array *out;
  mx_status st = op == MX_OP_SORT ? mx_sort(a, axis, desc, &out) : mx_argsort(a, axis, desc, &out);
  return result(env, st, &out);
}

static ERL_NIF_TERM matmul(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "matmul");
  ARG_ARRAY(1, b, "matmul");
  mx_array *out;
  return result(env, mx_matmul(a, b, &out), &out);
}

/* ---- shape and indexing --------------------------------------------------------- */

static ERL_NIF_TERM reshape(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "reshape");
  int64_t shape[MX_MAX_RANK];
  int nd;
  if (!get_ints(env, argv[1], shape, &nd)) return badarg(env, "[reshape] shape must be a tuple of at most %d integers", MX_MAX_RANK);
  mx_array *out;
  return result(env, mx_reshape(a, nd, shape, &out), &out);
}

static ERL_NIF_TERM broadcast(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "broadcast");
  int64_t shape[MX_MAX_RANK];
  int nd;
  if (!get_ints(env, argv[1], shape, &nd)) return badarg(env, "[broadcast] shape must be a tuple of at most %d integers", MX_MAX_RANK);
  mx_array *out;
  return result(env, mx_broadcast_to(a, nd, shape, &out), &out);
}

static ERL_NIF_TERM transpose(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "transpose");
  int axes[MX_MAX_RANK], n;
  if (!get_axes(env, argv[1], axes, &n)) return badarg(env, "[transpose] axes must be nil or a list of integers");
  if (n >= 0 && n != a->ndim) {
    char b[128];
    return raise_with(env, atom_mx_error, (snprintf(b, sizeof b, "[transpose] %d axes given for a rank-%d array; give a permutation of all axes", n, a->ndim), b));
  }
  mx_array *out;
  return result(env, mx_transpose(a, n < 0 ? NULL : axes, &out), &out);
}

static ERL_NIF_TERM squeeze(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "squeeze");
  int axes[MX_MAX_RANK], n;
  if (!get_axes(env, argv[1], axes, &n)) return badarg(env, "[squeeze] axes must be nil or a list of integers");
  mx_array *out;
  return result(env, mx_squeeze(a, n < 0 ? NULL : axes, n, &out), &out);
}

static ERL_NIF_TERM new_axis(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "new_axis");
  int axis;
  if (!get_int(env, argv[1], &axis)) return badarg(env, "[new_axis] axis must be an integer");
  mx_array *out;
  return result(env, mx_new_axis(a, axis, &out), &out);
}

static ERL_NIF_TERM reverse(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "reverse");
  int axes[MX_MAX_RANK], n;
  if (!get_axes(env, argv[1], axes, &n)) return badarg(env, "[reverse] axes must be nil or a list of integers");
  mx_array *out;
  return result(env, mx_reverse(a, n < 0 ? NULL : axes, n, &out), &out);
}

/* concatenate/stack: a list of arrays and an axis. */
static ERL_NIF_TERM join(ErlNifEnv *env, const ERL_NIF_TERM argv[], int stack) {
  const char *name = stack ? "stack" : "concatenate";
  unsigned len;
  int axis;
  if (!enif_get_list_length(env, argv[0], &len) || len == 0 || len > MX_MAX_INPUTS)
    return badarg(env, "[%s] expects a non-empty list of at most %d arrays", name, MX_MAX_INPUTS);
  if (!get_int(env, argv[1], &axis)) return badarg(env, "[%s] axis must be an integer", name);
  mx_array **arrays = enif_alloc(sizeof(mx_array *) * len);
  if (!arrays) return raise_with(env, atom_mx_error, "out of memory");
  ERL_NIF_TERM head, tail = argv[0];
  for (unsigned i = 0; i < len; i++) {
    if (!enif_get_list_cell(env, tail, &head, &tail) || !get_array(env, head, &arrays[i])) {
      enif_free(arrays);
      return badarg(env, "[%s] element %u of the list is not an Mx array", name, i);
    }
  }
  mx_array *out;
  mx_status st = stack ? mx_stack(arrays, (int)len, axis, &out) : mx_concatenate(arrays, (int)len, axis, &out);
  enif_free(arrays);
  return result(env, st, &out);
}

static ERL_NIF_TERM concatenate(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  return join(env, argv, 0);
}

static ERL_NIF_TERM stack(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  return join(env, argv, 1);
}

static ERL_NIF_TERM slice(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "slice");
  int64_t start[MX_MAX_RANK], stop[MX_MAX_RANK], stride[MX_MAX_RANK];
  int n1, n2, n3;
  if (!get_ints(env, argv[1], start, &n1) || !get_ints(env, argv[2], stop, &n2) || !get_ints(env, argv[3], stride, &n3))
    return badarg(env, "[slice] start, stop and strides must be lists of integers");
  if (n1 != a->ndim || n2 != a->ndim || n3 != a->ndim)
    return badarg(env, "[slice] start, stop and strides need one entry per axis (%d)", a->ndim);
  mx_array *out;
  return result(env, mx_slice(a, start, stop, stride, &out), &out);
}

static ERL_NIF_TERM pad(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "pad");
  ARG_ARRAY(1, v, "pad");
  int64_t lo[MX_MAX_RANK], hi[MX_MAX_RANK], in[MX_MAX_RANK];
  int n1, n2, n3;
  if (!get_ints(env, argv[2], lo, &n1) || !get_ints(env, argv[3], hi, &n2) || !get_ints(env, argv[4], in, &n3))
    return badarg(env, "[pad] padding must be lists of integers");
  if (n1 != a->ndim || n2 != a->ndim || n3 != a->ndim) return badarg(env, "[pad] padding needs one {lo, hi, interior} per axis (%d)", a->ndim);
  for (int i = 0; i < a->ndim; i++)
    if (llabs(lo[i]) > ((int64_t)1 << 40) || llabs(hi[i]) > ((int64_t)1 << 40) || in[i] > ((int64_t)1 << 40))
      return badarg(env, "[pad] padding on axis %d is too large", i);
  mx_array *out;
  return result(env, mx_pad(a, v, lo, hi, in, &out), &out);
}

static ERL_NIF_TERM take(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "take");
  ARG_ARRAY(1, idx, "take");
  int axis;
  if (!get_int(env, argv[2], &axis)) return badarg(env, "[take] axis must be an integer");
  mx_array *out;
  return result(env, mx_take(a, idx, axis, &out), &out);
}

static ERL_NIF_TERM take_along_axis(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "take_along_axis");
  ARG_ARRAY(1, idx, "take_along_axis");
  int axis;
  if (!get_int(env, argv[2], &axis)) return badarg(env, "[take_along_axis] axis must be an integer");
  mx_array *out;
  return result(env, mx_take_along_axis(a, idx, axis, &out), &out);
}

static ERL_NIF_TERM gather(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "gather");
  ARG_ARRAY(1, idx, "gather");
  mx_array *out;
  return result(env, mx_gather(a, idx, &out), &out);
}

static ERL_NIF_TERM indexed(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  int put;
  if (!get_bool(argv[0], &put)) return badarg(env, "[indexed] mode must be a boolean");
  const char *name = put ? "indexed_put" : "indexed_add";
  ARG_ARRAY(1, a, name);
  ARG_ARRAY(2, idx, name);
  ARG_ARRAY(3, upd, name);
  mx_array *out;
  return result(env, put ? mx_indexed_put(a, idx, upd, &out) : mx_indexed_add(a, idx, upd, &out), &out);
}

/* ---- transforms ------------------------------------------------------------------ */

static ERL_NIF_TERM trace_input(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "trace_input");
  mx_array *out;
  return result(env, mx_trace_input(a, &out), &out);
}

static ERL_NIF_TERM stop_gradient(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "stop_gradient");
  mx_array *out;
  return result(env, mx_stop_gradient(a, &out), &out);
}

static int get_roots(ErlNifEnv *env, ERL_NIF_TERM list, mx_array ***roots, unsigned *n);

/* vjp and vmap walk the graph under their outputs, building a node for each (~2 us):
 * past this many nodes they move to a dirty scheduler. */
#define TRANSFORM_INLINE_NODES 100

static int transform_is_large(ErlNifEnv *env, ERL_NIF_TERM outputs) {
  mx_array **outs;
  unsigned n;
  if (!get_roots(env, outputs, &outs, &n)) return 0; /* the NIF itself raises */
  int64_t size = mx_graph_size(outs, (int)n, TRANSFORM_INLINE_NODES);
  enif_free(outs);
  return size > TRANSFORM_INLINE_NODES;
}

/* vjp(outputs, cotangents, wrt) -> a list of gradients, one per wrt. */
static ERL_NIF_TERM vjp_now(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_array **outs, **cots, **wrt;
  unsigned n_out, n_cot, n_wrt;
  if (!get_roots(env, argv[0], &outs, &n_out)) return badarg(env, "[vjp] outputs must be a list of Mx arrays");
  if (!get_roots(env, argv[1], &cots, &n_cot)) {
    enif_free(outs);
    return badarg(env, "[vjp] cotangents must be a list of Mx arrays");
  }
  if (!get_roots(env, argv[2], &wrt, &n_wrt)) {
    enif_free(outs);
    enif_free(cots);
    return badarg(env, "[vjp] inputs must be a list of Mx arrays");
  }
  ERL_NIF_TERM res;
  mx_array **grads = enif_alloc(sizeof(mx_array *) * (n_wrt ? n_wrt : 1));
  if (n_out != n_cot) {
    res = badarg(env, "[vjp] %u outputs but %u cotangents; give one cotangent per output", n_out, n_cot);
  } else if (!grads) {
    res = raise_with(env, atom_mx_error, "[vjp] out of memory");
  } else if (mx_vjp(outs, cots, (int)n_out, wrt, (int)n_wrt, grads)) {
    res = raise_mx(env);
  } else {
    res = enif_make_list(env, 0);
    for (unsigned i = n_wrt; i-- > 0;) res = enif_make_list_cell(env, wrap(env, grads[i]), res);
  }
  enif_free(grads);
  enif_free(outs);
  enif_free(cots);
  enif_free(wrt);
  return res;
}

static ERL_NIF_TERM vjp(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  if (transform_is_large(env, argv[0])) return enif_schedule_nif(env, "vjp_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, vjp_now, argc, argv);
  return vjp_now(env, argc, argv);
}

/* vmap(outputs, placeholders, batched_inputs, batch_size) -> [{array, batched?}] */
static ERL_NIF_TERM vmap_now(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_array **outs, **holders, **inputs;
  unsigned n_out, n_h, n_in;
  ErlNifSInt64 B;
  if (!enif_get_int64(env, argv[3], &B) || B < 0) return badarg(env, "[vmap] batch size must be a non-negative integer");
  if (!get_roots(env, argv[0], &outs, &n_out)) return badarg(env, "[vmap] outputs must be a list of Mx arrays");
  if (!get_roots(env, argv[1], &holders, &n_h)) {
    enif_free(outs);
    return badarg(env, "[vmap] placeholders must be a list of Mx arrays");
  }
  if (!get_roots(env, argv[2], &inputs, &n_in)) {
    enif_free(outs);
    enif_free(holders);
    return badarg(env, "[vmap] inputs must be a list of Mx arrays");
  }
  ERL_NIF_TERM res;
  mx_array **results = enif_alloc(sizeof(mx_array *) * (n_out ? n_out : 1));
  int *batched = enif_alloc(sizeof(int) * (n_out ? n_out : 1));
  if (n_h != n_in) {
    res = badarg(env, "[vmap] %u placeholders but %u inputs", n_h, n_in);
  } else if (!results || !batched) {
    res = raise_with(env, atom_mx_error, "[vmap] out of memory");
  } else if (mx_vmap(outs, (int)n_out, holders, inputs, (int)n_in, B, results, batched)) {
    res = raise_mx(env);
  } else {
    res = enif_make_list(env, 0);
    for (unsigned i = n_out; i-- > 0;)
      res = enif_make_list_cell(env, enif_make_tuple2(env, wrap(env, results[i]), batched[i] ? atom_true : atom_false), res);
  }
  if (results) enif_free(results);
  if (batched) enif_free(batched);
  enif_free(outs);
  enif_free(holders);
  enif_free(inputs);
  return res;
}

static ERL_NIF_TERM vmap(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  if (transform_is_large(env, argv[0])) return enif_schedule_nif(env, "vmap_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, vmap_now, argc, argv);
  return vmap_now(env, argc, argv);
}

/* ---- evaluation and reading ----------------------------------------------------- */

/* Decodes a list of arrays into roots (enif_alloc'd). */
static int get_roots(ErlNifEnv *env, ERL_NIF_TERM list, mx_array ***roots, unsigned *n) {
  if (!enif_get_list_length(env, list, n)) return 0;
  *roots = enif_alloc(sizeof(mx_array *) * (*n ? *n : 1));
  if (!*roots) return 0;
  ERL_NIF_TERM head, tail = list;
  for (unsigned i = 0; i < *n; i++) {
    if (!enif_get_list_cell(env, tail, &head, &tail) || !get_array(env, head, &(*roots)[i])) {
      enif_free(*roots);
      return 0;
    }
  }
  return 1;
}

/* ---- where evaluation runs ----------------------------------------------------------
 * Cheap graphs run inline on the calling normal scheduler, stopping (and going
 * dirty) if they run past INLINE_BUDGET_NS; graphs over the cost threshold go to a
 * dirty CPU scheduler, which hands them to an engine thread (exec.c) and polls, so
 * that an eval whose process died is cancelled. Deep nodes (BLAS, LAPACK) always run
 * on an engine thread: scheduler stacks are too small for them. */
#define INLINE_BUDGET_NS 250000
#define POLL_NS 5000000

typedef struct {
  mx_array **roots;
  unsigned n;
  int owned;         /* roots retained by the job (an abandoned task outlives the NIF call) */
  int64_t budget_ns; /* 0: none (dirty); else the caller is a normal scheduler */
} eval_job;

static mx_status eval_job_run(void *ctx) {
  eval_job *j = ctx;
  return mx_eval_budget(j->roots, (int)j->n, j->budget_ns);
}

static void eval_job_free(void *ctx) {
  eval_job *j = ctx;
  for (unsigned i = 0; i < j->n && j->owned; i++) mx_release(j->roots[i]);
  enif_free(j->roots);
  enif_free(j);
}

/* On a dirty scheduler: fn(ctx) on an engine thread, abandoned (cancelled) if the
 * caller dies; ctx_free(ctx) runs when the task is done and released (on either
 * thread), so results are moved out by take(ctx) first. Returns 0 when the process
 * is gone (its result is never seen: ctx_free frees what the task made). */
static int run_on_engine_polling(ErlNifEnv *env, mx_task_fn fn, void *ctx, void (*ctx_free)(void *),
                                 void (*take)(void *), mx_status *st) {
  mx_task *t;
  if ((*st = mx_task_start(fn, ctx, ctx_free, &t)) != MX_OK) return 1;
  while (!mx_task_wait(t, POLL_NS)) {
    if (!enif_is_current_process_alive(env)) {
      mx_task_abandon(t);
      return 0;
    }
  }
  if (take) take(ctx); /* ctx lives while we hold the task: take its results before letting go */
  *st = mx_task_finish(t);
  return 1;
}

/* On a dirty scheduler: the eval on an engine thread, abandoned if the caller dies.
 * Returns 0 when the process is gone (its result is never seen). Takes roots. */
static int eval_on_engine_polling(ErlNifEnv *env, mx_array **roots, unsigned n, mx_status *st) {
  eval_job *j = enif_alloc(sizeof *j);
  if (!j) {
    enif_free(roots);
    *st = mx_error(MX_ENOMEM, "[eval] out of memory");
    return 1;
  }
  for (unsigned i = 0; i < n; i++) mx_retain(roots[i]);
  *j = (eval_job){roots, n, 1, 0};
  return run_on_engine_polling(env, eval_job_run, j, eval_job_free, NULL, st);
}

/* On a normal scheduler, for graphs under the threshold: inline within a time
 * budget (MX_EYIELD past it), or on an engine thread when a node is deep. */
static mx_status eval_cheap(mx_array **roots, unsigned n, int deep) {
  if (!deep) return mx_eval_budget(roots, (int)n, INLINE_BUDGET_NS);
  eval_job j = {roots, n, 0, INLINE_BUDGET_NS};
  return mx_run_engine(eval_job_run, &j);
}

static ERL_NIF_TERM eval_now(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_array **roots;
  unsigned n;
  mx_status st;
  if (!get_roots(env, argv[0], &roots, &n)) return badarg(env, "[eval] expects a list of Mx arrays");
  if (!eval_on_engine_polling(env, roots, n, &st)) return atom_ok;
  return st ? raise_mx(env) : atom_ok;
}

/* Charges inline work against the timeslice, so a process doing much of it is scheduled out. */
static void charge(ErlNifEnv *env, int64_t cost, int64_t limit) {
  if (limit > 0 && cost > limit / 100) enif_consume_timeslice(env, cost >= limit ? 100 : (int)(cost * 100 / limit));
}

/* Tiny graphs (the common case in a probabilistic program) run inline: a
 * dirty-scheduler round trip costs microseconds. Large ones go dirty. */
static ERL_NIF_TERM eval(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  mx_array **roots;
  unsigned n;
  int deep;
  if (!get_roots(env, argv[0], &roots, &n)) return badarg(env, "[eval] expects a list of Mx arrays");
  int64_t limit = atomic_load(&dirty_threshold);
  int64_t cost = mx_pending_cost(roots, (int)n, limit, &deep);
  if (cost > limit) {
    enif_free(roots);
    return enif_schedule_nif(env, "eval_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, eval_now, argc, argv);
  }
  mx_status st = cost > 0 ? eval_cheap(roots, n, deep) : MX_OK;
  enif_free(roots);
  charge(env, cost, limit);
  if (st == MX_EYIELD) return enif_schedule_nif(env, "eval_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, eval_now, argc, argv);
  return st ? raise_mx(env) : atom_ok;
}

/* Copies a's data (evaluated) into a new binary. */
static ERL_NIF_TERM copy_out(ErlNifEnv *env, mx_array *a) {
  ErlNifBinary bin;
  size_t n = mx_nbytes(a);
  if (!enif_alloc_binary(n, &bin)) return raise_with(env, atom_mx_error, "[to_binary] out of memory");
  /* Read under a buffer reference taken under the graph lock: a concurrent dispose cannot free it. */
  mx_buffer *buf = mx_acquire_buffer(a);
  if (!buf) {
    enif_release_binary(&bin);
    return raise_with(env, atom_mx_error, "[to_binary] the array was disposed; it cannot be read");
  }
  if (n) memcpy(bin.data, buf->data, n);
  mx_buffer_release(buf);
  return enif_make_binary(env, &bin);
}

static ERL_NIF_TERM to_binary_now(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "to_binary");
  mx_array **roots = enif_alloc(sizeof *roots);
  mx_status st;
  if (!roots) return raise_with(env, atom_mx_error, "[to_binary] out of memory");
  roots[0] = a;
  if (!eval_on_engine_polling(env, roots, 1, &st)) return atom_ok;
  return st ? raise_mx(env) : copy_out(env, a);
}

/* The copy into a new binary costs COPY_UNITS a byte. */
static ERL_NIF_TERM to_binary(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  ARG_ARRAY(0, a, "to_binary");
  int deep;
  int64_t limit = atomic_load(&dirty_threshold);
  int64_t cost = mx_pending_cost(&a, 1, limit, &deep), copy = COPY_UNITS * (int64_t)mx_nbytes(a);
  if (cost + copy > limit) return enif_schedule_nif(env, "to_binary_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, to_binary_now, argc, argv);
  mx_status st = cost > 0 ? eval_cheap(&a, 1, deep) : MX_OK;
  charge(env, cost + copy, limit);
  if (st == MX_EYIELD) return enif_schedule_nif(env, "to_binary_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, to_binary_now, argc, argv);
  return st ? raise_mx(env) : copy_out(env, a);
}

static ERL_NIF_TERM is_evaluated(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "evaluated?");
  return mx_is_ready(a) ? atom_true : atom_false;
}

static ERL_NIF_TERM state(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "state");
  static const char *names[] = {"pending", "pending", "evaluated", "disposed"};
  return enif_make_atom(env, names[atomic_load(&a->state) & 3]);
}

static ERL_NIF_TERM dispose(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, a, "dispose");
  mx_dispose(a);
  return atom_ok;
}

/* ---- memory ---------------------------------------------------------------------- */

static ERL_NIF_TERM memory_report_now(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  (void)argv;
  mx_reap_wait();
  mx_memory_stats s;
  mx_memory_stats_get(&s);
  int64_t tapes, tape_bytes;
  mx_tape_totals(&tapes, &tape_bytes);
  const char *names[] = {"active_bytes", "peak_bytes", "cache_bytes", "live_arrays", "live_buffers",
                         "cache_limit",  "memory_limit", "alloc_count", "cache_hits", "tapes", "tape_bytes"};
  int64_t vals[] = {s.active_bytes, s.peak_bytes, s.cache_bytes, s.live_arrays, s.live_buffers,
                    s.cache_limit, s.memory_limit, s.alloc_count, s.cache_hits, tapes, tape_bytes};
  ERL_NIF_TERM keys[11], values[11], map;
  for (int i = 0; i < 11; i++) {
    keys[i] = enif_make_atom(env, names[i]);
    values[i] = (i == 5 || i == 6) && vals[i] < 0 ? enif_make_atom(env, "infinity") : enif_make_int64(env, vals[i]);
  }
  enif_make_map_from_arrays(env, keys, values, 11, &map);
  return map;
}

/* Counts settle once graphs being freed on engine threads are gone: waited for on a dirty scheduler. */
static ERL_NIF_TERM memory_report(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  if (mx_reap_pending() > 0)
    return enif_schedule_nif(env, "memory_report_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, memory_report_now, argc, argv);
  return memory_report_now(env, argc, argv);
}

static int get_limit(ErlNifEnv *env, ERL_NIF_TERM t, int64_t *out) {
  char atom[16];
  ErlNifSInt64 v;
  if (enif_get_atom(env, t, atom, sizeof atom, ERL_NIF_LATIN1) && !strcmp(atom, "infinity")) {
    *out = -1;
    return 1;
  }
  if (!enif_get_int64(env, t, &v) || v < 0) return 0;
  *out = v;
  return 1;
}

static ERL_NIF_TERM set_cache_limit(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  int64_t v;
  if (!get_limit(env, argv[0], &v)) return badarg(env, "[set_cache_limit] expects a non-negative integer or :infinity");
  mx_memory_set_cache_limit(v);
  return atom_ok;
}

static ERL_NIF_TERM set_memory_limit(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  int64_t v;
  if (!get_limit(env, argv[0], &v)) return badarg(env, "[set_memory_limit] expects a non-negative integer or :infinity");
  mx_memory_set_memory_limit(v);
  return atom_ok;
}

static ERL_NIF_TERM reset_peak(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)env, (void)argc, (void)argv;
  mx_memory_reset_peak();
  return atom_ok;
}

static ERL_NIF_TERM clear_cache(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)env, (void)argc, (void)argv;
  mx_memory_clear_cache();
  mx_fft_cache_clear();
  return atom_ok;
}

static ERL_NIF_TERM set_dirty_threshold(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ErlNifSInt64 v;
  if (!enif_get_int64(env, argv[0], &v) || v < 0) return badarg(env, "[set_dirty_threshold] expects a non-negative integer");
  int64_t old = atomic_exchange(&dirty_threshold, v);
  return enif_make_int64(env, old);
}

static ERL_NIF_TERM op_names(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc, (void)argv;
  return enif_make_list_from_array(env, op_atoms, MX_OP_COUNT);
}

/* [{name, grad}] with grad :D (vjp rule), :Z (zero gradient) or :N (none yet): the tests iterate it. */
static ERL_NIF_TERM op_grads(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc, (void)argv;
  ERL_NIF_TERM list = enif_make_list(env, 0);
  for (int i = MX_OP_COUNT; i-- > 0;) {
    char kind[2] = {mx_ops[i].grad, 0};
    list = enif_make_list_cell(env, enif_make_tuple2(env, op_atoms[i], enif_make_atom(env, kind)), list);
  }
  return list;
}

static ERL_NIF_TERM noop(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)env, (void)argc, (void)argv;
  return atom_ok;
}

/* random(op, key, params, type, shape, flags): any RANDOM_* node (ops_random.c); flags: [:open | :log]. */
static ERL_NIF_TERM random_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_op op;
  if (!get_op(argv[0], &op) || strncmp(mx_ops[op].name, "random_", 7) != 0)
    return badarg(env, "[random] op must be one of the random_* primitives");
  const char *name = mx_ops[op].name;
  ARG_ARRAY(1, key, name);
  unsigned np;
  mx_array *params[2];
  if (!enif_get_list_length(env, argv[2], &np) || np > 2)
    return badarg(env, "[%s] parameters must be a list of at most 2 Mx arrays", name);
  ERL_NIF_TERM head, tail = argv[2];
  for (unsigned i = 0; i < np; i++)
    if (!enif_get_list_cell(env, tail, &head, &tail) || !get_array(env, head, &params[i]))
      return badarg(env, "[%s] parameter %u is not an Mx array", name, i + 1);
  mx_dtype t;
  if (!get_dtype(argv[3], &t)) return badarg(env, "[%s] unknown dtype; use one of Mx.Type.names()", name);
  int64_t shape[MX_MAX_RANK];
  int nd, flags = 0;
  if (!get_ints(env, argv[4], shape, &nd)) return badarg(env, "[%s] shape must be a tuple of at most %d integers", name, MX_MAX_RANK);
  unsigned nf;
  char atom[8];
  if (!enif_get_list_length(env, argv[5], &nf) || nf > 2) return badarg(env, "[%s] flags must be a list of :open or :log", name);
  tail = argv[5];
  for (unsigned i = 0; i < nf; i++) {
    if (!enif_get_list_cell(env, tail, &head, &tail) || !enif_get_atom(env, head, atom, sizeof atom, ERL_NIF_LATIN1))
      return badarg(env, "[%s] flags must be a list of :open or :log", name);
    if (!strcmp(atom, "open")) flags |= MX_RANDOM_OPEN;
    else if (!strcmp(atom, "log")) flags |= MX_RANDOM_LOG;
    else return badarg(env, "[%s] unknown flag :%s; flags are :open and :log", name, atom);
  }
  mx_array *out;
  return result(env, mx_random(op, key, (int)np, params, t, flags, nd, shape, &out), &out);
}

/* ---- linalg: Mx.Linalg's functions behind one NIF, keyed by name ------------------ */

/* linalg(name, [arrays], [numbers]) -> an array or a tuple of arrays. */
static const struct {
  const char *name;
  int n_in, n_par, max_par; /* array count; number count (up to max_par) */
} linalg_funs[] = {
    {"cholesky", 1, 0, 0}, {"solve", 2, 0, 0},    {"triangular_solve", 2, 4, 4}, {"inv", 1, 0, 0},
    {"det", 1, 0, 0},      {"slogdet", 1, 0, 0},  {"qr", 1, 0, 0},               {"svd", 1, 1, 1},
    {"svdvals", 1, 0, 0},  {"eigh", 1, 0, 0},     {"eigvalsh", 1, 0, 0},         {"norm", 1, 3, 5},
    {"cross", 2, 1, 1},    {"outer", 2, 0, 0},    {"trace", 1, 1, 1},            {"diag", 1, 1, 1},
    {"diagonal", 1, 1, 1},
    /* linalg additions: lu (factors, perm), QR mode: :complete, the general eigenproblem */
    {"lu", 1, 0, 0},       {"qr_complete", 1, 0, 0}, {"eig", 1, 0, 0},           {"eigvals", 1, 0, 0},
};

/* An integral parameter within [lo, hi]. */
static int linalg_int(double v, double lo, double hi, int64_t *out) {
  if (!(v >= lo && v <= hi) || v != floor(v)) return 0;
  *out = (int64_t)v;
  return 1;
}

static ERL_NIF_TERM linalg(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  char name[24];
  int f = -1, nf = (int)(sizeof linalg_funs / sizeof linalg_funs[0]);
  if (enif_get_atom(env, argv[0], name, sizeof name, ERL_NIF_LATIN1))
    for (int i = 0; i < nf; i++)
      if (!strcmp(name, linalg_funs[i].name)) f = i;
  if (f < 0) return badarg(env, "[linalg] unknown function; use one of Mx.Linalg's");
  mx_array *in[2] = {NULL, NULL};
  unsigned len;
  ERL_NIF_TERM head, tail = argv[1];
  if (!enif_get_list_length(env, argv[1], &len) || len != (unsigned)linalg_funs[f].n_in)
    return badarg(env, "[%s] expects a list of %d Mx arrays", name, linalg_funs[f].n_in);
  for (unsigned i = 0; i < len; i++)
    if (!enif_get_list_cell(env, tail, &head, &tail) || !get_array(env, head, &in[i]))
      return badarg(env, "[%s] element %u of the array list is not an Mx array", name, i);
  double par[5] = {0, 0, 0, 0, 0};
  tail = argv[2];
  if (!enif_get_list_length(env, argv[2], &len) || len < (unsigned)linalg_funs[f].n_par ||
      len > (unsigned)linalg_funs[f].max_par)
    return badarg(env, "[%s] expects %d to %d numeric parameters", name, linalg_funs[f].n_par, linalg_funs[f].max_par);
  for (unsigned i = 0; i < len; i++)
    if (!enif_get_list_cell(env, tail, &head, &tail) || !get_number(env, head, &par[i]))
      return badarg(env, "[%s] parameter %u must be a number, :infinity or :neg_infinity", name, i + 1);
  int64_t iv[5] = {0};
  mx_array *o[3] = {NULL, NULL, NULL};
  int nout = 1;
  mx_status st;
  const double big = (double)((int64_t)1 << 53);
  switch (f) {
  case 0: st = mx_cholesky(in[0], &o[0]); break;
  case 1: st = mx_solve(in[0], in[1], &o[0]); break;
  case 2:
    for (int i = 0; i < 4; i++)
      if (!linalg_int(par[i], 0, 1, &iv[i])) return badarg(env, "[triangular_solve] flags must be 0 or 1");
    st = mx_triangular_solve(in[0], in[1], (int)iv[0], (int)iv[1], (int)iv[2], (int)iv[3], &o[0]);
    break;
  case 3: st = mx_inv(in[0], &o[0]); break;
  case 4: st = mx_det(in[0], &o[0]); break;
  case 5: st = mx_slogdet(in[0], &o[0], &o[1]), nout = 2; break;
  case 6: st = mx_qr(in[0], &o[0], &o[1]), nout = 2; break;
  case 7:
    if (!linalg_int(par[0], 0, 1, &iv[0])) return badarg(env, "[svd] full_matrices must be 0 or 1");
    st = mx_svd(in[0], (int)iv[0], &o[0], &o[1], &o[2]), nout = 3;
    break;
  case 8: st = mx_svdvals(in[0], &o[0]); break;
  case 9: st = mx_eigh(in[0], &o[0], &o[1]), nout = 2; break;
  case 10: st = mx_eigvalsh(in[0], &o[0]); break;
  case 11: { /* [kind, p, keep | axes] */
    int axes[2], naxes = (int)len - 3;
    if (!linalg_int(par[0], MX_NORM_DEFAULT, MX_NORM_P, &iv[0]) || isnan(par[1]) || !linalg_int(par[2], 0, 1, &iv[2]))
      return badarg(env, "[norm] expects [kind, order, keep | axes]");
    for (int i = 0; i < naxes; i++) {
      if (!linalg_int(par[3 + i], -MX_MAX_RANK - 1, MX_MAX_RANK, &iv[3 + i])) return badarg(env, "[norm] axes must be small integers");
      axes[i] = (int)iv[3 + i];
    }
    st = mx_norm(in[0], (mx_norm_kind)iv[0], par[1], naxes ? axes : NULL, naxes ? naxes : -1, (int)iv[2], &o[0]);
    break;
  }
  case 12:
    if (!linalg_int(par[0], -MX_MAX_RANK - 1, MX_MAX_RANK, &iv[0])) return badarg(env, "[cross] axis must be a small integer");
    st = mx_cross(in[0], in[1], (int)iv[0], &o[0]);
    break;
  case 13: st = mx_outer(in[0], in[1], &o[0]); break;
  case 17: st = mx_lu(in[0], &o[0], &o[1]), nout = 2; break;
  case 18: st = mx_qr_mode(in[0], 1, &o[0], &o[1]), nout = 2; break;
  case 19: st = mx_eig(in[0], &o[0], &o[1]), nout = 2; break;
  case 20: st = mx_eig(in[0], &o[0], NULL); break;
  default: /* trace, diag, diagonal: an offset */
    if (!linalg_int(par[0], -big, big, &iv[0])) return badarg(env, "[%s] offset must be an integer", name);
    st = f == 14 ? mx_trace(in[0], iv[0], &o[0]) : f == 15 ? mx_diag(in[0], iv[0], &o[0]) : mx_diagonal(in[0], iv[0], &o[0]);
    break;
  }
  if (st) return raise_mx(env);
  if (nout == 1) return wrap(env, o[0]);
  ERL_NIF_TERM t[3];
  for (int i = 0; i < nout; i++) {
    t[i] = wrap(env, o[i]); /* takes o[i]; a failed wrap is an exception term to return as is */
    if (enif_is_exception(env, t[i])) {
      for (int j = i + 1; j < nout; j++) mx_release(o[j]);
      return t[i];
    }
  }
  return enif_make_tuple_from_array(env, t, (unsigned)nout);
}

/* ---- fft ------------------------------------------------------------------------- */

/* fft(op, a, axis, n | nil, norm): op :fft, :ifft, :rfft or :irfft; norm :backward, :ortho or :forward. */
static ERL_NIF_TERM fft_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  static const char *ops[] = {"fft", "ifft", "rfft", "irfft"}, *norms[] = {"backward", "ortho", "forward"};
  char name[16];
  int op = -1, norm = -1, axis;
  if (enif_get_atom(env, argv[0], name, sizeof name, ERL_NIF_LATIN1))
    for (int i = 0; i < 4; i++)
      if (!strcmp(name, ops[i])) op = i;
  if (op < 0) return badarg(env, "[fft] op must be :fft, :ifft, :rfft or :irfft");
  ARG_ARRAY(1, a, ops[op]);
  if (!get_int(env, argv[2], &axis)) return badarg(env, "[%s] axis must be an integer", ops[op]);
  ErlNifSInt64 n = 0;
  if (!enif_is_identical(argv[3], atom_nil) && (!enif_get_int64(env, argv[3], &n) || n < 1))
    return badarg(env, "[%s] n must be nil or a positive integer", ops[op]);
  if (enif_get_atom(env, argv[4], name, sizeof name, ERL_NIF_LATIN1))
    for (int i = 0; i < 3; i++)
      if (!strcmp(name, norms[i])) norm = i;
  if (norm < 0) return badarg(env, "[%s] norm must be :backward, :ortho or :forward", ops[op]);
  mx_array *out;
  mx_status st = op <= 1 ? mx_fft(a, axis, n, op == 1, (mx_fft_norm)norm, &out)
                 : op == 2 ? mx_rfft(a, axis, n, (mx_fft_norm)norm, &out)
                           : mx_irfft(a, axis, n, (mx_fft_norm)norm, &out);
  return result(env, st, &out);
}

/* ---- compile: tapes and per-function caches of them ------------------------------------
 * A compiled function (lib/mx/compile.ex) owns one cache: up to `size` signatures (a
 * binary key built in Elixir from the arguments' structure, shapes and dtypes), each
 * with its tape and the output's structure (a term kept in the entry's own env),
 * evicted least recently used. compile_call looks up and replays in one call. */

typedef struct {
  mx_tape *t;
} tape_res;

typedef struct {
  unsigned char *key;
  size_t key_len;
  mx_tape *tape;         /* NULL: the signature runs uncompiled (fallback) */
  ErlNifEnv *tenv;       /* holds template */
  ERL_NIF_TERM template; /* the output with each array replaced by a marker */
  uint64_t used;         /* LRU tick */
} cache_entry;

typedef struct {
  pthread_mutex_t lock;
  int size, n;
  cache_entry *e;
  uint64_t tick;
  int64_t hits, misses, compiles, fallbacks, evictions;
} cache_res;

static ErlNifResourceType *TAPE, *CACHE;

static void tape_dtor(ErlNifEnv *env, void *obj) {
  (void)env;
  tape_res *r = obj;
  mx_tape_release(r->t);
  r->t = NULL;
}

static void entry_clear(cache_entry *e) {
  mx_tape_release(e->tape);
  if (e->tenv) enif_free_env(e->tenv);
  enif_free(e->key);
  memset(e, 0, sizeof *e);
}

static void cache_dtor(ErlNifEnv *env, void *obj) {
  (void)env;
  cache_res *c = obj;
  for (int i = 0; i < c->n; i++) entry_clear(&c->e[i]);
  enif_free(c->e);
  pthread_mutex_destroy(&c->lock);
}

static int get_cache(ErlNifEnv *env, ERL_NIF_TERM t, cache_res **c) { return enif_get_resource(env, t, CACHE, (void **)c); }

static int get_tape(ErlNifEnv *env, ERL_NIF_TERM t, mx_tape **tape) {
  tape_res *r;
  if (!enif_get_resource(env, t, TAPE, (void **)&r) || !r->t) return 0;
  *tape = r->t;
  return 1;
}

static ERL_NIF_TERM make_tape_term(ErlNifEnv *env, mx_tape *t) {
  tape_res *r = enif_alloc_resource(TAPE, sizeof *r);
  if (!r) return raise_with(env, atom_mx_error, "[compile] out of memory allocating a tape handle");
  mx_tape_retain(t);
  r->t = t;
  ERL_NIF_TERM term = enif_make_resource(env, r);
  enif_release_resource(r);
  return term;
}

/* Under c->lock. */
static cache_entry *cache_find(cache_res *c, const ErlNifBinary *key) {
  for (int i = 0; i < c->n; i++)
    if (c->e[i].key_len == key->size && !memcmp(c->e[i].key, key->data, key->size)) return &c->e[i];
  return NULL;
}

/* Under c->lock: a cleared entry for key, evicting the least recently used when full. */
static cache_entry *cache_slot(cache_res *c, const ErlNifBinary *key) {
  cache_entry *e = cache_find(c, key);
  if (!e && c->n < c->size) e = &c->e[c->n++];
  if (!e) {
    e = &c->e[0];
    for (int i = 1; i < c->n; i++)
      if (c->e[i].used < e->used) e = &c->e[i];
    c->evictions++;
  }
  entry_clear(e);
  e->key = enif_alloc(key->size ? key->size : 1);
  if (!e->key) return NULL;
  memcpy(e->key, key->data, key->size);
  e->key_len = key->size;
  e->used = ++c->tick;
  return e;
}

static ERL_NIF_TERM compile_cache(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  int size;
  if (!get_int(env, argv[0], &size) || size < 1 || size > 1 << 16)
    return badarg(env, "[compile] cache_size must be an integer from 1 to 65536");
  cache_res *c = enif_alloc_resource(CACHE, sizeof *c);
  if (!c) return raise_with(env, atom_mx_error, "[compile] out of memory");
  memset(c, 0, sizeof *c);
  c->e = enif_alloc(sizeof(cache_entry) * (size_t)size);
  if (!c->e) {
    enif_release_resource(c); /* the destructor sees n = 0 */
    return raise_with(env, atom_mx_error, "[compile] out of memory");
  }
  pthread_mutex_init(&c->lock, NULL);
  memset(c->e, 0, sizeof(cache_entry) * (size_t)size);
  c->size = size;
  ERL_NIF_TERM term = enif_make_resource(env, c);
  enif_release_resource(c);
  return term;
}

static ERL_NIF_TERM placeholder(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_dtype t;
  int64_t shape[MX_MAX_RANK];
  int nd;
  if (!get_dtype(argv[0], &t)) return badarg(env, "[placeholder] unknown dtype; use one of Mx.Type.names()");
  if (!get_ints(env, argv[1], shape, &nd)) return badarg(env, "[placeholder] shape must be a tuple of at most %d integers", MX_MAX_RANK);
  mx_array *out;
  return result(env, mx_placeholder(t, nd, shape, &out), &out);
}

/* ---- capture: on a dirty scheduler, folding on an engine thread ---- */

typedef struct {
  mx_array **holders, **outs;
  unsigned n_in, n_out;
  mx_tape *tape;
  mx_tape **tape_out;
} capture_job;

static mx_status capture_job_run(void *ctx) {
  capture_job *j = ctx;
  return mx_tape_capture(j->holders, (int)j->n_in, j->outs, (int)j->n_out, &j->tape);
}

static void capture_job_take(void *ctx) {
  capture_job *j = ctx;
  *j->tape_out = j->tape;
  j->tape = NULL;
}

static void capture_job_free(void *ctx) {
  capture_job *j = ctx;
  for (unsigned i = 0; i < j->n_in; i++) mx_release(j->holders[i]);
  for (unsigned i = 0; i < j->n_out; i++) mx_release(j->outs[i]);
  enif_free(j->holders);
  enif_free(j->outs);
  mx_tape_release(j->tape); /* an abandoned capture's */
  enif_free(j);
}

/* compile_capture(cache, key, placeholders, outputs, template) -> tape, cached under key. */
static ERL_NIF_TERM compile_capture(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  cache_res *c;
  ErlNifBinary key;
  if (!get_cache(env, argv[0], &c)) return badarg(env, "[compile] argument 1 must be a compile cache");
  if (!enif_inspect_binary(env, argv[1], &key)) return badarg(env, "[compile] the signature key must be a binary");
  capture_job *j = enif_alloc(sizeof *j);
  if (!j) return raise_with(env, atom_mx_error, "[compile] out of memory");
  memset(j, 0, sizeof *j);
  if (!get_roots(env, argv[2], &j->holders, &j->n_in)) {
    enif_free(j);
    return badarg(env, "[compile] placeholders must be a list of Mx arrays");
  }
  if (!get_roots(env, argv[3], &j->outs, &j->n_out)) {
    enif_free(j->holders);
    enif_free(j);
    return badarg(env, "[compile] outputs must be a list of Mx arrays");
  }
  for (unsigned i = 0; i < j->n_in; i++) mx_retain(j->holders[i]);
  for (unsigned i = 0; i < j->n_out; i++) mx_retain(j->outs[i]);
  mx_tape *tape = NULL;
  j->tape_out = &tape;
  mx_status st;
  if (!run_on_engine_polling(env, capture_job_run, j, capture_job_free, capture_job_take, &st)) return atom_ok;
  if (st) {
    mx_tape_release(tape);
    return raise_mx(env);
  }
  ERL_NIF_TERM term = make_tape_term(env, tape); /* retains */
  pthread_mutex_lock(&c->lock);
  cache_entry *e = cache_slot(c, &key);
  if (e && (e->tenv = enif_alloc_env())) {
    e->template = enif_make_copy(e->tenv, argv[4]);
    e->tape = tape;
    tape = NULL;
  }
  c->compiles++;
  pthread_mutex_unlock(&c->lock);
  mx_tape_release(tape);
  return term;
}

/* compile_fallback(cache, key): the signature runs uncompiled from now on. */
static ERL_NIF_TERM compile_fallback(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  cache_res *c;
  ErlNifBinary key;
  if (!get_cache(env, argv[0], &c)) return badarg(env, "[compile] argument 1 must be a compile cache");
  if (!enif_inspect_binary(env, argv[1], &key)) return badarg(env, "[compile] the signature key must be a binary");
  pthread_mutex_lock(&c->lock);
  cache_slot(c, &key);
  c->fallbacks++;
  pthread_mutex_unlock(&c->lock);
  return atom_ok;
}

/* ---- replay: where mx_eval would run (inline under the threshold, else dirty; deep on an engine thread) ---- */

typedef struct {
  mx_tape *tape;
  mx_array **inputs;
  unsigned n;
  mx_array **results;
  int n_out;
  int64_t budget_ns;
  int owned; /* tape and inputs retained by the job (dirty: an abandoned task outlives the call) */
  mx_status st;
  mx_array ***results_out;
} replay_job;

static mx_status replay_job_run(void *ctx) {
  replay_job *j = ctx;
  return j->st = mx_tape_run(j->tape, j->inputs, (int)j->n, j->budget_ns, j->results);
}

static void replay_job_take(void *ctx) {
  replay_job *j = ctx;
  *j->results_out = j->results;
  j->results = NULL;
}

static void replay_job_free(void *ctx) {
  replay_job *j = ctx;
  if (j->results) { /* abandoned: nobody takes what it made */
    for (int i = 0; i < j->n_out && j->st == MX_OK; i++) mx_release(j->results[i]);
    enif_free(j->results);
  }
  for (unsigned i = 0; i < j->n; i++) mx_release(j->inputs[i]);
  enif_free(j->inputs);
  mx_tape_release(j->tape);
  enif_free(j);
}

static ERL_NIF_TERM wrap_results(ErlNifEnv *env, mx_array **results, int n, int template_given, ERL_NIF_TERM template) {
  ERL_NIF_TERM list = enif_make_list(env, 0);
  for (int i = n; i-- > 0;) list = enif_make_list_cell(env, wrap(env, results[i]), list);
  return template_given ? enif_make_tuple2(env, template, list) : list;
}

static int64_t tape_cost(mx_tape *t, int *deep) {
  mx_tape_info info;
  mx_tape_info_get(t, &info);
  *deep = info.deep;
  return info.cost;
}

/* argv: tape, inputs [, template]: on a dirty scheduler, the replay on an engine thread. */
static ERL_NIF_TERM replay_dirty(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  mx_tape *tape;
  if (!get_tape(env, argv[0], &tape)) return badarg(env, "[compile] argument 1 must be a tape");
  replay_job *j = enif_alloc(sizeof *j);
  if (!j) return raise_with(env, atom_mx_error, "[compile] out of memory");
  memset(j, 0, sizeof *j);
  if (!get_roots(env, argv[1], &j->inputs, &j->n)) {
    enif_free(j);
    return badarg(env, "[compile] inputs must be a list of Mx arrays");
  }
  mx_tape_info info;
  mx_tape_info_get(tape, &info);
  j->n_out = info.n_outputs;
  j->results = enif_alloc(sizeof(mx_array *) * (size_t)(info.n_outputs ? info.n_outputs : 1));
  if (!j->results) {
    enif_free(j->inputs);
    enif_free(j);
    return raise_with(env, atom_mx_error, "[compile] out of memory");
  }
  for (unsigned i = 0; i < j->n; i++) mx_retain(j->inputs[i]);
  mx_tape_retain(tape);
  j->tape = tape;
  j->owned = 1;
  mx_array **results = NULL;
  j->results_out = &results;
  mx_status st;
  if (!run_on_engine_polling(env, replay_job_run, j, replay_job_free, replay_job_take, &st)) return atom_ok;
  ERL_NIF_TERM res = st ? raise_mx(env) : wrap_results(env, results, info.n_outputs, argc == 3, argc == 3 ? argv[2] : atom_nil);
  enif_free(results);
  return res;
}

/* Runs a replay from a normal scheduler: inline when cheap (deep instructions on an engine
 * thread), else rescheduled dirty. The template, when given, comes back with the outputs. */
static ERL_NIF_TERM replay(ErlNifEnv *env, mx_tape *tape, ERL_NIF_TERM tape_term, ERL_NIF_TERM inputs_term, mx_array **inputs,
                           unsigned n, int template_given, ERL_NIF_TERM template) {
  int deep, in_deep;
  int64_t limit = atomic_load(&dirty_threshold);
  int64_t cost = tape_cost(tape, &deep) + mx_pending_cost(inputs, (int)n, limit, &in_deep);
  deep |= in_deep;
  ERL_NIF_TERM args[3] = {tape_term, inputs_term, template};
  if (cost > limit) return enif_schedule_nif(env, "compile_replay_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, replay_dirty, template_given ? 3 : 2, args);
  mx_tape_info info;
  mx_tape_info_get(tape, &info);
  mx_array *local[8], **results = info.n_outputs <= 8 ? local : enif_alloc(sizeof(mx_array *) * (size_t)info.n_outputs);
  if (!results) return raise_with(env, atom_mx_error, "[compile] out of memory");
  replay_job j = {tape, inputs, n, results, info.n_outputs, INLINE_BUDGET_NS, 0, MX_OK, NULL};
  mx_status st = deep ? mx_run_engine(replay_job_run, &j) : replay_job_run(&j);
  charge(env, cost, limit);
  ERL_NIF_TERM res;
  if (st == MX_EYIELD)
    res = enif_schedule_nif(env, "compile_replay_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, replay_dirty, template_given ? 3 : 2, args);
  else
    res = st ? raise_mx(env) : wrap_results(env, results, info.n_outputs, template_given, template);
  if (results != local) enif_free(results);
  return res;
}

/* Inputs a transform traces (grad, vjp, jvp, vmap) would lose their derivative in a replay.
 * Whether one is traced (then *raised is the exception; an exception term may be 0). */
static int refuse_traced(ErlNifEnv *env, mx_array **inputs, unsigned n, ERL_NIF_TERM *raised) {
  for (unsigned i = 0; i < n; i++)
    if (inputs[i]->traced) {
      *raised = raise_with(env, atom_mx_error,
                           "[compile] an input is traced by Mx.grad/vjp/jvp/vmap: a compiled function cannot be "
                           "differentiated or vmapped; compile the transformed function instead, e.g. "
                           "Mx.compile(Mx.value_and_grad(f))");
      return 1;
    }
  return 0;
}

/* compile_call(cache, key, inputs) -> {template, outputs} | :miss | :fallback | :traced */
static ERL_NIF_TERM compile_call(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  cache_res *c;
  ErlNifBinary key;
  mx_array **inputs;
  unsigned n;
  if (!get_cache(env, argv[0], &c)) return badarg(env, "[compile] argument 1 must be a compile cache");
  if (!enif_inspect_binary(env, argv[1], &key)) return badarg(env, "[compile] the signature key must be a binary");
  if (!get_roots(env, argv[2], &inputs, &n)) return badarg(env, "[compile] inputs must be a list of Mx arrays");
  for (unsigned i = 0; i < n; i++)
    if (inputs[i]->traced) { /* a transform traces the call: the caller runs fun itself, inlined into that trace */
      enif_free(inputs);
      return enif_make_atom(env, "traced");
    }
  pthread_mutex_lock(&c->lock);
  cache_entry *e = cache_find(c, &key);
  mx_tape *tape = e ? e->tape : NULL;
  ERL_NIF_TERM template = atom_nil;
  if (e) {
    c->hits++;
    e->used = ++c->tick;
    if (tape) {
      mx_tape_retain(tape);
      template = enif_make_copy(env, e->template);
    }
  } else {
    c->misses++;
  }
  pthread_mutex_unlock(&c->lock);
  if (!tape) {
    enif_free(inputs);
    return enif_make_atom(env, e ? "fallback" : "miss");
  }
  ERL_NIF_TERM tape_term = make_tape_term(env, tape);
  ERL_NIF_TERM res = enif_has_pending_exception(env, NULL) ? tape_term : replay(env, tape, tape_term, argv[2], inputs, n, 1, template);
  mx_tape_release(tape);
  enif_free(inputs);
  return res;
}

/* compile_run(tape, inputs) -> outputs (the first call, right after capture; no cache statistics). */
static ERL_NIF_TERM compile_run(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_tape *tape;
  mx_array **inputs;
  unsigned n;
  if (!get_tape(env, argv[0], &tape)) return badarg(env, "[compile] argument 1 must be a tape");
  if (!get_roots(env, argv[1], &inputs, &n)) return badarg(env, "[compile] inputs must be a list of Mx arrays");
  ERL_NIF_TERM raised;
  if (refuse_traced(env, inputs, n, &raised)) {
    enif_free(inputs);
    return raised;
  }
  ERL_NIF_TERM res = replay(env, tape, argv[0], argv[1], inputs, n, 0, atom_nil);
  enif_free(inputs);
  return res;
}

static ERL_NIF_TERM int_map(ErlNifEnv *env, const char **names, const int64_t *vals, int n) {
  ERL_NIF_TERM keys[16], values[16], map;
  for (int i = 0; i < n; i++) {
    keys[i] = enif_make_atom(env, names[i]);
    values[i] = enif_make_int64(env, vals[i]);
  }
  enif_make_map_from_arrays(env, keys, values, (unsigned)n, &map);
  return map;
}

static ERL_NIF_TERM compile_stats(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  cache_res *c;
  if (!get_cache(env, argv[0], &c)) return badarg(env, "[compile] argument 1 must be a compile cache");
  pthread_mutex_lock(&c->lock);
  int64_t bytes = 0, tapes = 0;
  for (int i = 0; i < c->n; i++)
    if (c->e[i].tape) {
      mx_tape_info info;
      mx_tape_info_get(c->e[i].tape, &info);
      bytes += info.bytes;
      tapes++;
    }
  const char *names[] = {"hits", "misses", "compiles", "fallbacks", "evictions", "entries", "tapes", "cache_size", "tape_bytes"};
  int64_t vals[] = {c->hits, c->misses, c->compiles, c->fallbacks, c->evictions, c->n, tapes, c->size, bytes};
  pthread_mutex_unlock(&c->lock);
  return int_map(env, names, vals, 9);
}

/* The generated-C tier's state into map: tier (:interpreter, :compiling, :native or
 * {:failed, reason}), compile wall and CPU time (us), cache_hit, jit_note. */
static ERL_NIF_TERM jit_info_put(ErlNifEnv *env, mx_tape *t, ERL_NIF_TERM map) {
  mx_jit_info j;
  mx_tape_jit_info(t, &j);
  static const char *const tiers[] = {"interpreter", "compiling", "native", "failed"};
  ERL_NIF_TERM note, tier = enif_make_atom(env, tiers[j.tier]);
  size_t n = strlen(j.reason);
  unsigned char *np = enif_make_new_binary(env, n, &note);
  if (!np) return raise_with(env, atom_mx_error, "[compile] out of memory describing a tape's tier");
  memcpy(np, j.reason, n);
  if (j.tier == MX_TIER_FAILED) tier = enif_make_tuple2(env, tier, note);
  enif_make_map_put(env, map, enif_make_atom(env, "tier"), tier, &map);
  enif_make_map_put(env, map, enif_make_atom(env, "compile_wall_us"), enif_make_int64(env, j.wall_ns / 1000), &map);
  enif_make_map_put(env, map, enif_make_atom(env, "compile_cpu_us"), enif_make_int64(env, j.cpu_ns / 1000), &map);
  enif_make_map_put(env, map, enif_make_atom(env, "cache_hit"), j.cache_hit ? atom_true : atom_false, &map);
  enif_make_map_put(env, map, enif_make_atom(env, "jit_note"), note, &map);
  return map;
}

/* tape_info(tape) -> %{inputs:, outputs:, instructions:, constants:, folded:, merged:, cost:, bytes:, ops: [op]} */
static ERL_NIF_TERM tape_info(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_tape *t;
  if (!get_tape(env, argv[0], &t)) return badarg(env, "[compile] argument 1 must be a tape");
  mx_tape_info info;
  mx_tape_info_get(t, &info);
  const char *names[] = {"inputs", "outputs", "instructions", "constants", "folded", "merged", "cost", "bytes"};
  int64_t vals[] = {info.n_inputs, info.n_outputs, info.n_instructions, info.n_constants, info.folded, info.merged, info.cost, info.bytes};
  ERL_NIF_TERM map = int_map(env, names, vals, 8), ops = enif_make_list(env, 0);
  for (int k = info.n_instructions; k-- > 0;) ops = enif_make_list_cell(env, op_atoms[mx_tape_instruction_op(t, k)], ops);
  enif_make_map_put(env, map, enif_make_atom(env, "ops"), ops, &map);
  enif_make_map_put(env, map, enif_make_atom(env, "deep"), info.deep ? atom_true : atom_false, &map);
  /* lowering and the replay plan: no-ops removed, dead instructions, fused groups (their ops), arena bytes */
  const char *plan_names[] = {"noops", "dead", "groups", "fused", "arena_bytes", "fast"};
  int64_t plan_vals[] = {info.noops, info.dead, info.groups, info.fused, info.arena_bytes, info.fast};
  for (int i = 0; i < 6; i++)
    enif_make_map_put(env, map, enif_make_atom(env, plan_names[i]), enif_make_int64(env, plan_vals[i]), &map);
  ERL_NIF_TERM fusion = enif_make_list(env, 0), group_ops = enif_make_list(env, 0);
  for (int k = info.n_instructions; k-- > 0;) {
    int g = mx_tape_instruction_group(t, k);
    if (g < 0) continue;
    group_ops = enif_make_list_cell(env, op_atoms[mx_tape_instruction_op(t, k)], group_ops);
    if (k == 0 || mx_tape_instruction_group(t, k - 1) != g) {
      fusion = enif_make_list_cell(env, group_ops, fusion);
      group_ops = enif_make_list(env, 0);
    }
  }
  enif_make_map_put(env, map, enif_make_atom(env, "fusion"), fusion, &map);
  return jit_info_put(env, t, map);
}

/* tape_jit(tape, [mx_jit, cc, xdg_cache_home, home, tmpdir, path]): starts the generated-C tier
 * off the hot path (jit.c) with Elixir's environment (binaries, nil when unset). */
static ERL_NIF_TERM tape_jit(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_tape *t;
  if (!get_tape(env, argv[0], &t)) return badarg(env, "[compile] argument 1 must be a tape");
  char *vals[6] = {0};
  ERL_NIF_TERM list = argv[1], head;
  int ok = 1;
  for (int i = 0; i < 6 && ok; i++) {
    ErlNifBinary b;
    ok = enif_get_list_cell(env, list, &head, &list);
    if (ok && !enif_is_identical(head, atom_nil)) {
      ok = enif_inspect_binary(env, head, &b) && (vals[i] = enif_alloc(b.size + 1));
      if (ok) memcpy(vals[i], b.data, b.size), vals[i][b.size] = 0;
    }
  }
  mx_status st = MX_OK;
  if (ok) {
    mx_jit_env e = {vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]};
    st = mx_tape_jit_start(t, &e);
  }
  for (int i = 0; i < 6; i++) enif_free(vals[i]);
  if (!ok) return badarg(env, "[compile] the jit environment must be a list of 6 binaries or nil");
  return st ? raise_mx(env) : atom_ok;
}

/* tape_jit_info(tape) -> %{tier:, compile_wall_us:, compile_cpu_us:, cache_hit:, jit_note:} */
static ERL_NIF_TERM tape_jit_info(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_tape *t;
  if (!get_tape(env, argv[0], &t)) return badarg(env, "[compile] argument 1 must be a tape");
  ERL_NIF_TERM map = enif_make_new_map(env);
  return jit_info_put(env, t, map);
}

/* tape_jit_wait(tape, ms) -> tape_jit_info's map once the tier leaves :compiling or after ms
 * (at most 100: the caller loops, so a dirty scheduler is never held long). Dirty IO: it sleeps. */
static ERL_NIF_TERM tape_jit_wait(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_tape *t;
  long ms;
  if (!get_tape(env, argv[0], &t)) return badarg(env, "[compile] argument 1 must be a tape");
  if (!enif_get_long(env, argv[1], &ms) || ms < 0) return badarg(env, "[compile] the wait must be a non-negative number of ms");
  mx_tape_jit_wait(t, (ms > 100 ? 100 : ms) * 1000000LL);
  return jit_info_put(env, t, enif_make_new_map(env));
}

/* tape_jit_source(tape) -> the C jit.c generates for it (inspection and tests). */
static ERL_NIF_TERM tape_jit_source(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_tape *t;
  if (!get_tape(env, argv[0], &t)) return badarg(env, "[compile] argument 1 must be a tape");
  char *src;
  size_t scratch;
  if (mx_jit_source(t, &src, &scratch)) return raise_mx(env);
  ERL_NIF_TERM bin;
  size_t n = strlen(src);
  unsigned char *p = enif_make_new_binary(env, n, &bin);
  if (p) memcpy(p, src, n);
  free(src);
  return p ? bin : raise_with(env, atom_mx_error, "[compile] out of memory");
}

/* compile_lookup(cache, key) -> the cached tape of a signature, or nil (none, or a fallback). */
static ERL_NIF_TERM compile_lookup(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  cache_res *c;
  ErlNifBinary key;
  if (!get_cache(env, argv[0], &c)) return badarg(env, "[compile] argument 1 must be a compile cache");
  if (!enif_inspect_binary(env, argv[1], &key)) return badarg(env, "[compile] the signature key must be a binary");
  pthread_mutex_lock(&c->lock);
  cache_entry *e = cache_find(c, &key);
  mx_tape *tape = e ? e->tape : NULL;
  if (tape) mx_tape_retain(tape);
  pthread_mutex_unlock(&c->lock);
  if (!tape) return atom_nil;
  ERL_NIF_TERM term = make_tape_term(env, tape);
  mx_tape_release(tape);
  return term;
}

/* compile_clear(cache) -> :ok: every entry dropped (a tape goes once no caller holds it). */
static ERL_NIF_TERM compile_clear(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  cache_res *c;
  if (!get_cache(env, argv[0], &c)) return badarg(env, "[compile] argument 1 must be a compile cache");
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < c->n; i++) entry_clear(&c->e[i]);
  c->n = 0;
  pthread_mutex_unlock(&c->lock);
  return atom_ok;
}

/* ---- scheduler probe: per-thread CPU time of each call on a normal scheduler ----------
 * Off by default (one relaxed load per call); the tests turn it on and check that no
 * call, destructor included, holds a normal scheduler past the limit. */
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t probe_max_ns, probe_over;
static const char *probe_max_name = "";

static int64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void probe_record(const char *name, int64_t ns) {
  pthread_mutex_lock(&probe_lock);
  if (ns > probe_max_ns) probe_max_ns = ns, probe_max_name = name;
  if (ns > 1000000) probe_over++;
  pthread_mutex_unlock(&probe_lock);
}

/* probe(:start) resets and starts; probe(:stop) stops and returns {max_ns, nif, calls over 1 ms}. */
static ERL_NIF_TERM probe(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  char what[8];
  if (!enif_get_atom(env, argv[0], what, sizeof what, ERL_NIF_LATIN1) || (strcmp(what, "start") && strcmp(what, "stop")))
    return badarg(env, "[probe] expects :start or :stop");
  pthread_mutex_lock(&probe_lock);
  ERL_NIF_TERM res = enif_make_tuple3(env, enif_make_int64(env, probe_max_ns), enif_make_atom(env, probe_max_name),
                                      enif_make_int64(env, probe_over));
  if (!strcmp(what, "start")) probe_max_ns = 0, probe_over = 0, probe_max_name = "";
  atomic_store(&probe_on, !strcmp(what, "start"));
  pthread_mutex_unlock(&probe_lock);
  return res;
}

/* ---- convolution and window reductions (ops_conv.c) ---------------------------------- */

/* A list of exactly n integers (one per axis), named in the error. */
static int get_ints_n(ErlNifEnv *env, ERL_NIF_TERM t, int64_t *out, int n) {
  int got = -1;
  return get_ints(env, t, out, &got) && got == n;
}

static ERL_NIF_TERM conv(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, x, "conv");
  ARG_ARRAY(1, w, "conv");
  int S = x->ndim - 2;
  if (S < 1) return badarg(env, "[conv] the input needs rank >= 3 ({batch, channels, spatial...}), got %d", x->ndim);
  int64_t str[MX_MAX_RANK], lo[MX_MAX_RANK], hi[MX_MAX_RANK], idil[MX_MAX_RANK], kdil[MX_MAX_RANK];
  ErlNifSInt64 fg, bg;
  if (!get_ints_n(env, argv[2], str, S) || !get_ints_n(env, argv[3], lo, S) || !get_ints_n(env, argv[4], hi, S) ||
      !get_ints_n(env, argv[5], idil, S) || !get_ints_n(env, argv[6], kdil, S))
    return badarg(env, "[conv] strides, padding (low, high) and dilations need one integer per spatial axis (%d)", S);
  if (!enif_get_int64(env, argv[7], &fg) || !enif_get_int64(env, argv[8], &bg))
    return badarg(env, "[conv] feature_group_size and batch_group_size must be integers");
  mx_array *out;
  return result(env, mx_conv(x, w, str, lo, hi, idil, kdil, fg, bg, &out), &out);
}

static ERL_NIF_TERM window(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_op op;
  if (!get_op(argv[0], &op)) return unknown_op(env, "window", argv[0]);
  ARG_ARRAY(1, x, "window");
  int R = x->ndim;
  int64_t win[MX_MAX_RANK], str[MX_MAX_RANK], lo[MX_MAX_RANK], hi[MX_MAX_RANK], dil[MX_MAX_RANK];
  if (!get_ints_n(env, argv[2], win, R) || !get_ints_n(env, argv[3], str, R) || !get_ints_n(env, argv[4], lo, R) ||
      !get_ints_n(env, argv[5], hi, R) || !get_ints_n(env, argv[6], dil, R))
    return badarg(env, "[window] window dimensions, strides, padding (low, high) and dilations need one integer per axis (%d)", R);
  mx_array *out;
  return result(env, mx_window(op, x, win, str, lo, hi, dil, &out), &out);
}

static ERL_NIF_TERM window_scatter(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_op op;
  if (!get_op(argv[0], &op)) return unknown_op(env, "window_scatter", argv[0]);
  ARG_ARRAY(1, x, "window_scatter");
  ARG_ARRAY(2, source, "window_scatter");
  ARG_ARRAY(3, init, "window_scatter");
  int R = x->ndim;
  int64_t win[MX_MAX_RANK], str[MX_MAX_RANK], lo[MX_MAX_RANK], hi[MX_MAX_RANK];
  if (!get_ints_n(env, argv[4], win, R) || !get_ints_n(env, argv[5], str, R) || !get_ints_n(env, argv[6], lo, R) ||
      !get_ints_n(env, argv[7], hi, R))
    return badarg(env, "[window_scatter] window dimensions, strides and padding (low, high) need one integer per axis (%d)", R);
  mx_array *out;
  return result(env, mx_window_scatter(op, x, source, init, win, str, lo, hi, &out), &out);
}

/* ---- quantization as MLX does it (ops_quant.c) ------------------------------------------- */

static int get_scheme(ErlNifEnv *env, const ERL_NIF_TERM *argv, ErlNifSInt64 *gs, ErlNifSInt64 *bits) {
  return enif_get_int64(env, argv[0], gs) && enif_get_int64(env, argv[1], bits);
}

static ERL_NIF_TERM quantize(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, w, "quantize");
  ErlNifSInt64 gs, bits;
  if (!get_scheme(env, argv + 1, &gs, &bits)) return badarg(env, "[quantize] group_size and bits must be integers");
  mx_array *o[3];
  if (mx_quantize(w, gs, bits, &o[0], &o[1], &o[2])) return raise_mx(env);
  ERL_NIF_TERM t[3];
  for (int i = 0; i < 3; i++) {
    t[i] = wrap(env, o[i]); /* takes o[i]; a failed wrap is an exception term to return as is */
    if (enif_is_exception(env, t[i])) {
      for (int j = i + 1; j < 3; j++) mx_release(o[j]);
      return t[i];
    }
  }
  return enif_make_tuple_from_array(env, t, 3);
}

static ERL_NIF_TERM dequantize(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, wq, "dequantize");
  ARG_ARRAY(1, s, "dequantize");
  ARG_ARRAY(2, b, "dequantize");
  ErlNifSInt64 gs, bits;
  if (!get_scheme(env, argv + 3, &gs, &bits)) return badarg(env, "[dequantize] group_size and bits must be integers");
  mx_array *out;
  return result(env, mx_dequantize(wq, s, b, gs, bits, &out), &out);
}

static ERL_NIF_TERM quantized_matmul(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, x, "quantized_matmul");
  ARG_ARRAY(1, wq, "quantized_matmul");
  ARG_ARRAY(2, s, "quantized_matmul");
  ARG_ARRAY(3, b, "quantized_matmul");
  ErlNifSInt64 gs, bits;
  if (!get_scheme(env, argv + 5, &gs, &bits) || !(enif_is_identical(argv[4], atom_true) || enif_is_identical(argv[4], atom_false)))
    return badarg(env, "[quantized_matmul] transpose must be a boolean, group_size and bits integers");
  mx_array *out;
  return result(env, mx_quantized_matmul(x, wq, s, b, enif_is_identical(argv[4], atom_true), gs, bits, &out), &out);
}

#define PROBED(fn)                                                                          \
  static ERL_NIF_TERM fn##_probed(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {    \
    if (!atomic_load_explicit(&probe_on, memory_order_relaxed)) return fn(env, argc, argv); \
    int64_t t0 = thread_cpu_ns();                                                           \
    ERL_NIF_TERM r = fn(env, argc, argv);                                                   \
    probe_record(#fn, thread_cpu_ns() - t0);                                                \
    return r;                                                                               \
  }
PROBED(conv)
PROBED(quantize)
PROBED(dequantize)
PROBED(quantized_matmul)
PROBED(window)
PROBED(window_scatter)
PROBED(from_binary)
PROBED(full)
PROBED(iota)
PROBED(arange)
PROBED(linspace)
PROBED(eye)
PROBED(unary)
PROBED(binary)
PROBED(as_type)
PROBED(select_nif)
PROBED(bitcast_nif)
PROBED(clip)
PROBED(reduce)
PROBED(scan)
PROBED(sort)
PROBED(matmul)
PROBED(reshape)
PROBED(broadcast)
PROBED(transpose)
PROBED(squeeze)
PROBED(new_axis)
PROBED(reverse)
PROBED(concatenate)
PROBED(stack)
PROBED(slice)
PROBED(pad)
PROBED(take)
PROBED(take_along_axis)
PROBED(gather)
PROBED(indexed)
PROBED(trace_input)
PROBED(stop_gradient)
PROBED(vjp)
PROBED(vmap)
PROBED(random_nif)
PROBED(linalg)
PROBED(fft_nif)
PROBED(betainc_nif)
PROBED(eval)
PROBED(to_binary)
PROBED(is_evaluated)
PROBED(state)
PROBED(dispose)
PROBED(memory_report)
PROBED(set_cache_limit)
PROBED(set_memory_limit)
PROBED(reset_peak)
PROBED(clear_cache)
PROBED(set_dirty_threshold)
PROBED(op_names)
PROBED(op_grads)
PROBED(noop)
PROBED(placeholder)
PROBED(compile_cache)
PROBED(compile_fallback)
PROBED(compile_call)
PROBED(compile_run)
PROBED(compile_stats)
PROBED(tape_info)

/* ---- fused scaled-dot-product attention (ops_sdpa.c): graph building ---------------------- */

/* q, k, v, mask (nil, :causal or an array), scale (a number). */
static ERL_NIF_TERM scaled_dot_product_attention(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ARG_ARRAY(0, q, "scaled_dot_product_attention");
  ARG_ARRAY(1, k, "scaled_dot_product_attention");
  ARG_ARRAY(2, v, "scaled_dot_product_attention");
  mx_array *mask = NULL;
  char name[16];
  int causal = enif_get_atom(env, argv[3], name, sizeof name, ERL_NIF_LATIN1) && strcmp(name, "causal") == 0;
  if (!causal && !enif_is_identical(argv[3], atom_nil) && !get_array(env, argv[3], &mask))
    return badarg(env, "[scaled_dot_product_attention] mask must be nil, :causal or an Mx array");
  double scale;
  if (!get_number(env, argv[4], &scale)) return badarg(env, "[scaled_dot_product_attention] scale must be a number");
  mx_array *out;
  return result(env, mx_scaled_dot_product_attention(q, k, v, mask, scale, causal, &out), &out);
}
PROBED(scaled_dot_product_attention)

/* ---- samplers (sampler.c): a run on an engine thread, talking to its owner by messages ------
 * sampler_start returns {handle, ref}; the run sends the owner {:mx_sampler, ref, ...}:
 * :iteration (report_every 0) or :progress messages, :grad requests (dynamic targets: the
 * owner answers with sampler_reply) and :done. Dropping the handle, sampler_cancel or the
 * owner's death cancels the run; its memory is freed when the run ends (the handle's
 * destructor never waits). After sampler_cancel returns no further message is sent. */
typedef struct {
  mx_sampler *s;
  mx_tape *tape; /* retained; NULL: the owner computes the gradient */
  int64_t d, report_every, n_samples;
  int dense;
  ErlNifPid owner;
  ErlNifEnv *env, *msg_env; /* env holds ref; msg_env is reused for each message */
  ERL_NIF_TERM ref;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int cancelled, finished, waiting, replied, reply_error;
  mx_status status;
  char message[1024];
  double *reply; /* d + 1: lp, then the gradient */
} sampler_job;

typedef struct {
  sampler_job *job;
  mx_task *task;
} sampler_res;

static ErlNifResourceType *SAMPLER;

static void sampler_job_free(void *ctx) {
  sampler_job *j = ctx;
  mx_sampler_free(j->s);
  mx_tape_release(j->tape);
  if (j->env) enif_free_env(j->env);
  if (j->msg_env) enif_free_env(j->msg_env);
  pthread_mutex_destroy(&j->lock);
  pthread_cond_destroy(&j->cond);
  if (j->reply) enif_free(j->reply);
  enif_free(j);
}

/* Under j->lock: {:mx_sampler, ref, tag, a [, b]} to the owner, unless the run was cancelled. */
static void sampler_send(sampler_job *j, const char *tag, ERL_NIF_TERM a, ERL_NIF_TERM b, int arity) {
  ErlNifEnv *e = j->msg_env;
  if (!j->cancelled) {
    ERL_NIF_TERM items[5] = {enif_make_atom(e, "mx_sampler"), enif_make_copy(e, j->ref), enif_make_atom(e, tag), a, b};
    enif_send(NULL, &j->owner, e, enif_make_tuple_from_array(e, items, (unsigned)arity));
  }
  enif_clear_env(e);
}

/* Floats that may not be finite, as Mx.to_number gives them. */
static ERL_NIF_TERM make_float(ErlNifEnv *e, double x) {
  if (isnan(x)) return enif_make_atom(e, "nan");
  if (isinf(x)) return enif_make_atom(e, x > 0 ? "infinity" : "neg_infinity");
  return enif_make_double(e, x);
}

static void sampler_on_iteration(void *ctx, int64_t i, const mx_sampler_stats *st) {
  sampler_job *j = ctx;
  if (j->report_every > 0 && (i + 1) % j->report_every != 0) return;
  pthread_mutex_lock(&j->lock);
  ErlNifEnv *e = j->msg_env;
  if (j->report_every > 0) {
    sampler_send(j, "progress", enif_make_int64(e, i + 1), 0, 4);
  } else {
    /* the keys of Gen.Inference.NUTS's stats maps, in their (alphabetical) order */
    ERL_NIF_TERM t = enif_make_tuple7(e, make_float(e, st->accept_stat), st->divergent ? atom_true : atom_false,
                                      make_float(e, st->energy), enif_make_int(e, st->n_leapfrog),
                                      st->nan_energy ? atom_true : atom_false, make_float(e, st->step_size),
                                      enif_make_int(e, st->tree_depth));
    sampler_send(j, "iteration", enif_make_int64(e, i), t, 5);
  }
  pthread_mutex_unlock(&j->lock);
}

/* The dynamic target: asks the owner for lp and the gradient at q and waits for the reply. */
static mx_status sampler_ask_owner(void *ctx, const double *q, double *lp, double *grad) {
  sampler_job *j = ctx;
  pthread_mutex_lock(&j->lock);
  ErlNifBinary bin;
  if (!j->cancelled) {
    if (!enif_alloc_binary((size_t)j->d * sizeof(double), &bin)) {
      pthread_mutex_unlock(&j->lock);
      return mx_error(MX_ENOMEM, "[sampler] out of memory sending a gradient request");
    }
    memcpy(bin.data, q, bin.size);
    j->waiting = 1, j->replied = 0;
    sampler_send(j, "grad", enif_make_binary(j->msg_env, &bin), 0, 4);
  }
  while (!j->replied && !j->cancelled && !mx_cancelled()) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50000000; /* the task's own cancel flag has no condvar: look again every 50 ms */
    if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_cond_timedwait(&j->cond, &j->lock, &ts);
  }
  int replied = j->replied, error = j->reply_error;
  j->waiting = 0, j->replied = 0, j->reply_error = 0;
  if (replied && !error) {
    *lp = j->reply[0];
    memcpy(grad, j->reply + 1, (size_t)j->d * sizeof(double));
  }
  char msg[sizeof j->message];
  snprintf(msg, sizeof msg, "%s", j->message);
  pthread_mutex_unlock(&j->lock);
  if (!replied) return mx_error(MX_ECANCELLED, "[sampler] cancelled while waiting for the gradient");
  return error ? mx_error(MX_ECOMPUTE, "%s", msg) : MX_OK;
}

/* A tape target whose NaN points are asked of the owner, which tells a NaN input
 * (nan_energy) from a parameter stepped out of range (-inf, a divergence) as the GFI does. */
static mx_status sampler_tape_or_ask(void *ctx, const double *q, double *lp, double *grad) {
  sampler_job *j = ctx;
  mx_status st = mx_tape_logp_grad(j->tape, q, lp, grad);
  int nan = !st && isnan(*lp);
  for (int64_t i = 0; i < j->d && !st && !nan; i++) nan = isnan(grad[i]);
  return nan ? sampler_ask_owner(ctx, q, lp, grad) : st;
}

static mx_status sampler_task(void *ctx) {
  sampler_job *j = ctx;
  mx_status st = mx_sampler_run(j->s);
  pthread_mutex_lock(&j->lock);
  j->finished = 1;
  j->status = st;
  snprintf(j->message, sizeof j->message, "%s", st ? mx_last_error() : "");
  ErlNifEnv *e = j->msg_env;
  ERL_NIF_TERM r = atom_ok;
  if (st) {
    ErlNifBinary bin;
    size_t n = strlen(j->message);
    if (enif_alloc_binary(n, &bin)) {
      memcpy(bin.data, j->message, n);
      r = enif_make_tuple2(e, atom_error, enif_make_binary(e, &bin));
    } else {
      r = atom_error;
    }
  }
  sampler_send(j, "done", r, 0, 4);
  pthread_mutex_unlock(&j->lock);
  return st;
}

static void sampler_cancel_job(sampler_job *j) {
  pthread_mutex_lock(&j->lock);
  j->cancelled = 1;
  pthread_cond_broadcast(&j->cond);
  if (j->s) mx_sampler_cancel(j->s);
  pthread_mutex_unlock(&j->lock);
}

static void sampler_dtor(ErlNifEnv *env, void *obj) {
  (void)env;
  sampler_res *r = obj;
  if (!r->task) return;
  sampler_cancel_job(r->job);
  mx_task_abandon(r->task); /* the job is freed when the run ends, on its own thread */
}

static void sampler_down(ErlNifEnv *env, void *obj, ErlNifPid *pid, ErlNifMonitor *mon) {
  (void)env, (void)pid, (void)mon;
  sampler_res *r = obj;
  if (r->task) sampler_cancel_job(r->job);
}

static int get_sampler(ErlNifEnv *env, ERL_NIF_TERM t, sampler_res **r) {
  return enif_get_resource(env, t, SAMPLER, (void **)r) && (*r)->task;
}

/* Config fields: value of key, or 0 (with a raised ArgumentError in *err) when missing. */
static int cfg_get(ErlNifEnv *env, ERL_NIF_TERM map, const char *key, ERL_NIF_TERM *v, ERL_NIF_TERM *err) {
  if (enif_get_map_value(env, map, enif_make_atom(env, key), v)) return 1;
  *err = badarg(env, "[sampler_start] the config has no %s: key", key);
  return 0;
}

static int cfg_int(ErlNifEnv *env, ERL_NIF_TERM map, const char *key, int64_t lo, int64_t hi, int64_t *out, ERL_NIF_TERM *err) {
  ERL_NIF_TERM v;
  ErlNifSInt64 x;
  if (!cfg_get(env, map, key, &v, err)) return 0;
  if (!enif_get_int64(env, v, &x) || x < lo || x > hi) {
    *err = badarg(env, "[sampler_start] %s: must be an integer in %lld..%lld", key, (long long)lo, (long long)hi);
    return 0;
  }
  *out = x;
  return 1;
}

static int cfg_float(ErlNifEnv *env, ERL_NIF_TERM map, const char *key, double *out, ERL_NIF_TERM *err) {
  ERL_NIF_TERM v;
  ErlNifSInt64 i;
  if (!cfg_get(env, map, key, &v, err)) return 0;
  if (enif_get_double(env, v, out)) return 1;
  if (enif_get_int64(env, v, &i)) return *out = (double)i, 1;
  *err = badarg(env, "[sampler_start] %s: must be a number", key);
  return 0;
}

/* A binary of n native f64 (or nil when nil_ok: *out = NULL), copied into *out (enif_alloc,
 * so a sub-binary at any offset will do); the caller frees it. */
static int cfg_f64s(ErlNifEnv *env, ERL_NIF_TERM map, const char *key, int64_t n, int nil_ok, double **out,
                    ERL_NIF_TERM *err) {
  ERL_NIF_TERM v;
  ErlNifBinary bin;
  *out = NULL;
  if (!cfg_get(env, map, key, &v, err)) return 0;
  if (nil_ok && enif_is_identical(v, atom_nil)) return 1;
  if (!enif_inspect_binary(env, v, &bin) || bin.size != (size_t)n * sizeof(double)) {
    *err = badarg(env, "[sampler_start] %s: must be a binary of %lld native f64 values%s", key, (long long)n,
                  nil_ok ? " or nil" : "");
    return 0;
  }
  if (!(*out = enif_alloc(bin.size ? bin.size : 1))) {
    *err = raise_with(env, atom_mx_error, "[sampler_start] out of memory");
    return 0;
  }
  memcpy(*out, bin.data, bin.size);
  return 1;
}

static int cfg_atom(ErlNifEnv *env, ERL_NIF_TERM map, const char *key, const char *const *names, int n, int *out,
                    ERL_NIF_TERM *err) {
  ERL_NIF_TERM v;
  if (!cfg_get(env, map, key, &v, err)) return 0;
  for (int i = 0; i < n; i++)
    if (enif_is_identical(v, enif_make_atom(env, names[i]))) return *out = i, 1;
  *err = badarg(env, "[sampler_start] %s: must be one of :%s%s%s%s", key, names[0], n > 1 ? ", :" : "", n > 1 ? names[1] : "",
                n > 2 ? " or another listed value" : "");
  return 0;
}

/* The run of a validated config on an engine thread: {handle, ref}. */
static ERL_NIF_TERM sampler_launch(ErlNifEnv *env, mx_sampler_config *c, mx_tape *tape, ErlNifPid owner,
                                   int64_t report) {
  sampler_job *j = enif_alloc(sizeof *j);
  if (!j) return raise_with(env, atom_mx_error, "[sampler_start] out of memory");
  memset(j, 0, sizeof *j);
  pthread_mutex_init(&j->lock, NULL);
  pthread_cond_init(&j->cond, NULL);
  j->d = c->d, j->report_every = report, j->owner = owner, j->n_samples = c->samples, j->dense = c->metric == MX_METRIC_DENSE;
  j->env = enif_alloc_env(), j->msg_env = enif_alloc_env();
  j->reply = enif_alloc((size_t)(c->d + 1) * sizeof(double));
  if (!j->env || !j->msg_env || !j->reply) {
    sampler_job_free(j);
    return raise_with(env, atom_mx_error, "[sampler_start] out of memory");
  }
  j->ref = enif_make_ref(j->env);
  j->tape = tape; /* retained below, once the handle owns the job */
  c->logp_grad = tape ? sampler_tape_or_ask : sampler_ask_owner, c->target = j;
  c->on_iteration = sampler_on_iteration, c->iteration_ctx = j;
  mx_status st = mx_sampler_new(c, &j->s);
  if (st) {
    j->tape = NULL;
    sampler_job_free(j);
    return st == MX_EINVAL ? badarg(env, "%s", mx_last_error()) : raise_mx(env);
  }
  if (tape) mx_tape_retain(tape);
  sampler_res *r = enif_alloc_resource(SAMPLER, sizeof *r);
  if (!r) {
    sampler_job_free(j);
    return raise_with(env, atom_mx_error, "[sampler_start] out of memory allocating a handle");
  }
  r->job = j, r->task = NULL;
  ERL_NIF_TERM handle = enif_make_resource(env, r);
  enif_release_resource(r);
  if ((st = mx_task_start(sampler_task, j, sampler_job_free, &r->task))) return raise_mx(env); /* j freed by it */
  if (enif_monitor_process(env, r, &owner, NULL) != 0) sampler_cancel_job(j); /* the owner is already gone */
  return enif_make_tuple2(env, handle, enif_make_copy(env, j->ref));
}

/* sampler_start's config map and tape into *c (its q0 and inv_metric allocated: the caller frees
 * them) and *tape: 1, or 0 with the exception to return in *err (an exception term is 0). */
static int sampler_config(ErlNifEnv *env, ERL_NIF_TERM m, ERL_NIF_TERM tape_term, mx_sampler_config *c, mx_tape **tape,
                          int64_t *report, ERL_NIF_TERM *err) {
  static const char *const algorithms[] = {"nuts", "hmc", "mala"}, *const metrics[] = {"diag", "dense"};
  static const char *const keys[] = {"algorithm", "d", "q0", "key", "warmup", "samples", "target_accept", "max_depth",
                                     "step_size", "adapt_metric", "metric", "inv_metric", "n_leapfrog", "report_every"};
  ERL_NIF_TERM v;
  size_t size;
  double *q0 = NULL, *inv = NULL;
  int ok = 0;
  *tape = NULL;
  memset(c, 0, sizeof *c);
  if (!enif_get_map_size(env, m, &size)) return *err = badarg(env, "[sampler_start] the config must be a map"), 0;
  if (size != sizeof keys / sizeof *keys)
    return *err = badarg(env, "[sampler_start] the config must have exactly the keys algorithm, d, q0, key, warmup, "
                              "samples, target_accept, max_depth, step_size, adapt_metric, metric, inv_metric, "
                              "n_leapfrog, report_every"),
           0;
  int alg, metric = 0, adapt;
  int64_t d = 0, warmup, samples, depth, nlf, k[2];
  int nk = 0;
  if (!cfg_atom(env, m, "algorithm", algorithms, 3, &alg, err) || !cfg_int(env, m, "d", 1, 1 << 24, &d, err) ||
      !cfg_f64s(env, m, "q0", d, 0, &q0, err) || !cfg_int(env, m, "warmup", 0, INT64_C(1) << 40, &warmup, err) ||
      !cfg_int(env, m, "samples", 0, INT64_C(1) << 40, &samples, err) ||
      !cfg_float(env, m, "target_accept", &c->target_accept, err) || !cfg_int(env, m, "max_depth", 1, 30, &depth, err) ||
      !cfg_float(env, m, "step_size", &c->step_size, err) || !cfg_atom(env, m, "metric", metrics, 2, &metric, err) ||
      !cfg_f64s(env, m, "inv_metric", metric ? d * d : d, 1, &inv, err) ||
      !cfg_int(env, m, "n_leapfrog", 1, 1 << 20, &nlf, err) ||
      !cfg_int(env, m, "report_every", 0, INT64_C(1) << 40, report, err) || !cfg_get(env, m, "adapt_metric", &v, err)) {
  } else if (!get_bool(v, &adapt)) {
    *err = badarg(env, "[sampler_start] adapt_metric: must be true or false");
  } else if (!cfg_get(env, m, "key", &v, err)) {
  } else if (!get_ints(env, v, k, &nk) || nk != 2 || k[0] < 0 || k[0] > UINT32_MAX || k[1] < 0 || k[1] > UINT32_MAX) {
    *err = badarg(env, "[sampler_start] key: must be the two u32 words of an Mx.Random key, as a list");
  } else if (!enif_is_identical(tape_term, atom_nil) && !get_tape(env, tape_term, tape)) {
    *err = badarg(env, "[sampler_start] argument 2 must be a tape (Mx.Compile.tape!/2) or nil");
  } else if (*tape && mx_sampler_check_tape(*tape, d)) {
    *err = badarg(env, "%s", mx_last_error());
  } else {
    c->algorithm = (mx_sampler_algorithm)alg, c->d = d, c->warmup = warmup, c->samples = samples;
    c->max_depth = (int)depth, c->n_leapfrog = (int)nlf, c->adapt_metric = adapt, c->metric = (mx_metric_kind)metric;
    c->key[0] = (uint32_t)k[0], c->key[1] = (uint32_t)k[1];
    ok = 1;
  }
  c->q0 = q0, c->inv_metric = inv; /* mx_sampler_new copies them */
  return ok;
}

/* sampler_start(config, tape | nil, pid) -> {handle, ref}. */
static ERL_NIF_TERM sampler_start(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_sampler_config c;
  mx_tape *tape;
  int64_t report = 0;
  ErlNifPid owner;
  ERL_NIF_TERM res;
  if (!sampler_config(env, argv[0], argv[1], &c, &tape, &report, &res)) {
  } else if (!enif_get_local_pid(env, argv[2], &owner)) {
    res = badarg(env, "[sampler_start] argument 3 must be a local pid");
  } else {
    res = sampler_launch(env, &c, tape, owner, report);
  }
  if (c.q0) enif_free((void *)c.q0);
  if (c.inv_metric) enif_free((void *)c.inv_metric);
  return res;
}

/* A tape target run on a scheduler: a NaN point, which only the owner can classify
 * (sampler_tape_or_ask), ends the run with MX_EYIELD. */
typedef struct {
  mx_tape *tape;
  int64_t d;
} inline_target;

static mx_status tape_or_yield(void *ctx, const double *q, double *lp, double *grad) {
  inline_target *t = ctx;
  mx_status st = mx_tape_logp_grad(t->tape, q, lp, grad);
  int nan = !st && isnan(*lp);
  for (int64_t i = 0; i < t->d && !st && !nan; i++) nan = isnan(grad[i]);
  return nan ? MX_EYIELD : st;
}

static ERL_NIF_TERM sampler_result_term(ErlNifEnv *env, mx_sampler *s, int64_t d, int64_t n_samples, int dense);

/* sampler_run_inline(config, tape) -> sampler_result's tuple, {:error, message}, or :threaded.
 * A short run (no warmup, a tape without deep nodes, its gradients' cost under the dirty
 * threshold) runs here, on the caller's scheduler: no engine thread to wake and no message, which
 * on a busy machine cost far more than one transition. Any other run, or one that meets a NaN
 * point, is :threaded: sampler_start runs it (the same key gives the same run). */
static ERL_NIF_TERM sampler_run_inline(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_sampler_config c;
  mx_tape *tape;
  int64_t report = 0;
  ERL_NIF_TERM res;
  int ok = sampler_config(env, argv[0], argv[1], &c, &tape, &report, &res), deep = 0;
  int64_t cost = ok && tape ? tape_cost(tape, &deep) : 0, limit = atomic_load(&dirty_threshold);
  /* gradients: the start, then per iteration n_leapfrog (HMC), 1 (MALA) or up to 2^max_depth - 1 (NUTS) */
  double per = c.algorithm == MX_SAMPLER_HMC ? c.n_leapfrog : c.algorithm == MX_SAMPLER_MALA ? 1 : ldexp(1.0, c.max_depth);
  double total = (double)cost * (1.0 + (double)c.samples * per);
  if (ok && (!tape || deep || c.warmup > 0 || total > (double)limit)) {
    res = enif_make_atom(env, "threaded");
  } else if (ok) {
    inline_target t = {tape, c.d};
    c.logp_grad = tape_or_yield, c.target = &t;
    mx_sampler *s = NULL;
    mx_status st = mx_sampler_new(&c, &s);
    if (st) {
      res = st == MX_EINVAL ? badarg(env, "%s", mx_last_error()) : raise_mx(env);
    } else if ((st = mx_sampler_run(s)) == MX_EYIELD) {
      res = enif_make_atom(env, "threaded");
    } else if (st) { /* as sampler_task reports it */
      const char *msg = mx_last_error();
      size_t n = strlen(msg);
      ERL_NIF_TERM text;
      unsigned char *p = enif_make_new_binary(env, n, &text);
      if (p) memcpy(p, msg, n);
      res = p ? enif_make_tuple2(env, atom_error, text) : raise_with(env, atom_mx_error, "[sampler_run_inline] out of memory");
    } else {
      res = sampler_result_term(env, s, c.d, c.samples, c.metric == MX_METRIC_DENSE);
    }
    mx_sampler_free(s);
    charge(env, (int64_t)total, limit);
  }
  if (c.q0) enif_free((void *)c.q0);
  if (c.inv_metric) enif_free((void *)c.inv_metric);
  return res;
}

/* sampler_reply(handle, binary of d + 1 f64 | {:error, message}) -> :ok */
static ERL_NIF_TERM sampler_reply(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  sampler_res *r;
  if (!get_sampler(env, argv[0], &r)) return badarg(env, "[sampler_reply] argument 1 must be a sampler handle");
  sampler_job *j = r->job;
  ErlNifBinary bin;
  const ERL_NIF_TERM *e;
  int arity, is_bin = enif_inspect_binary(env, argv[1], &bin);
  if (is_bin && bin.size != (size_t)(j->d + 1) * sizeof(double))
    return badarg(env, "[sampler_reply] the reply must hold %lld native f64 (lp, then the gradient), got %zu bytes",
                  (long long)(j->d + 1), bin.size);
  ErlNifBinary msg = {0};
  if (!is_bin && !(enif_get_tuple(env, argv[1], &arity, &e) && arity == 2 && enif_is_identical(e[0], atom_error) &&
                   enif_inspect_binary(env, e[1], &msg)))
    return badarg(env, "[sampler_reply] the reply must be a binary of f64 or {:error, message}");
  pthread_mutex_lock(&j->lock);
  if (j->cancelled || !j->waiting || j->replied) {
    pthread_mutex_unlock(&j->lock);
    return badarg(env, "[sampler_reply] no gradient request is pending (or the run was cancelled)");
  }
  if (is_bin) {
    memcpy(j->reply, bin.data, bin.size);
  } else {
    size_t n = msg.size < sizeof j->message - 1 ? msg.size : sizeof j->message - 1;
    memcpy(j->message, msg.data, n);
    j->message[n] = 0;
    j->reply_error = 1;
  }
  j->replied = 1;
  pthread_cond_broadcast(&j->cond);
  pthread_mutex_unlock(&j->lock);
  return atom_ok;
}

/* sampler_cancel(handle) -> :ok; no message is sent after it returns. */
static ERL_NIF_TERM sampler_cancel(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  sampler_res *r;
  if (!get_sampler(env, argv[0], &r)) return badarg(env, "[sampler_cancel] argument 1 must be a sampler handle");
  sampler_cancel_job(r->job);
  return atom_ok;
}

/* A binary of n native f64 copied from x; 0 when it cannot be allocated. */
static int f64_binary(ErlNifEnv *env, const double *x, size_t n, ERL_NIF_TERM *t) {
  unsigned char *p = enif_make_new_binary(env, n * sizeof(double), t);
  if (!p) return 0;
  if (n) memcpy(p, x, n * sizeof(double));
  return 1;
}

/* sampler_result(handle) -> {draws, stats, step_size, inv_metric, last}, once (the run's memory is
 * then freed): draws samples x d native f64; last the chain's final point, d native f64;
 * stats a map of one binary per field over warmup and sampling iterations (accept_stat, energy,
 * step_size: f64; n_leapfrog, tree_depth: s32; divergent, nan_energy: u8), all native-endian. */
static ERL_NIF_TERM sampler_result(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  sampler_res *r;
  if (!get_sampler(env, argv[0], &r)) return badarg(env, "[sampler_result] argument 1 must be a sampler handle");
  sampler_job *j = r->job;
  pthread_mutex_lock(&j->lock);
  int finished = j->finished;
  mx_status st = j->status;
  mx_sampler *s = finished && !st ? j->s : NULL;
  if (s) j->s = NULL; /* returned once: the run's memory goes now, not when the handle is collected */
  pthread_mutex_unlock(&j->lock);
  if (!finished) return badarg(env, "[sampler_result] the run has not finished; wait for its :done message");
  if (st) return raise_with(env, atom_mx_error, j->message);
  if (!s) return badarg(env, "[sampler_result] the result was already taken (it is returned once)");
  ERL_NIF_TERM res = sampler_result_term(env, s, j->d, j->n_samples, j->dense);
  mx_sampler_free(s);
  return res;
}

/* The finished run's {draws, stats, step_size, inv_metric, last} (or the exception to return). */
static ERL_NIF_TERM sampler_result_term(ErlNifEnv *env, mx_sampler *s, int64_t d, int64_t n_samples, int dense) {
  int64_t iters = mx_sampler_iterations_done(s);
  const mx_sampler_stats *ss = mx_sampler_stats_of(s);
  ERL_NIF_TERM keys[7], vals[7];
  const char *names[7] = {"accept_stat", "divergent", "energy", "n_leapfrog", "nan_energy", "step_size", "tree_depth"};
  size_t widths[7] = {8, 1, 8, 4, 1, 8, 4};
  int ok = 1;
  for (int f = 0; f < 7 && ok; f++) {
    keys[f] = enif_make_atom(env, names[f]);
    unsigned char *p = enif_make_new_binary(env, (size_t)iters * widths[f], &vals[f]);
    ok = p != NULL;
    for (int64_t i = 0; i < iters && ok; i++) {
      const mx_sampler_stats *x = &ss[i];
      switch (f) {
      case 0: memcpy(p + i * 8, &x->accept_stat, 8); break;
      case 1: p[i] = x->divergent; break;
      case 2: memcpy(p + i * 8, &x->energy, 8); break;
      case 3: memcpy(p + i * 4, &x->n_leapfrog, 4); break;
      case 4: p[i] = x->nan_energy; break;
      case 5: memcpy(p + i * 8, &x->step_size, 8); break;
      default: memcpy(p + i * 4, &x->tree_depth, 4); break;
      }
    }
  }
  ERL_NIF_TERM stats, draws, inv, last;
  ok = ok && enif_make_map_from_arrays(env, keys, vals, 7, &stats) &&
       f64_binary(env, mx_sampler_draws(s), (size_t)(n_samples * d), &draws) &&
       f64_binary(env, mx_sampler_inv_metric(s), (size_t)(dense ? d * d : d), &inv) &&
       f64_binary(env, mx_sampler_position(s), (size_t)d, &last);
  ERL_NIF_TERM step = make_float(env, mx_sampler_step_size(s));
  if (!ok) return raise_with(env, atom_mx_error, "[sampler_result] out of memory building the result");
  return enif_make_tuple5(env, draws, stats, step, inv, last);
}

PROBED(sampler_start)
PROBED(sampler_reply)
PROBED(sampler_cancel)
PROBED(sampler_run_inline)

/* ---- registration: scheduler per NIF in one table ------------------------------ */

/* tape_time_raw(tape, [binary], reps) -> {wall_ns, [binary], thread_cpu_ns}: benchmarks only
 * (@doc false). Times reps replays through mx_tape_run_raw, as a C sampler calls it, and returns
 * the outputs; the thread's CPU time is the figure a loaded machine distorts least. */
static ERL_NIF_TERM tape_time_raw(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  mx_tape *t;
  long reps;
  unsigned n;
  if (!get_tape(env, argv[0], &t)) return badarg(env, "[compile] argument 1 must be a tape");
  if (!enif_get_long(env, argv[2], &reps) || reps < 1) return badarg(env, "[compile] reps must be a positive integer");
  mx_tape_info info;
  mx_tape_info_get(t, &info);
  if (info.deep) return badarg(env, "[compile] tape_time_raw runs on a scheduler: the tape has deep (LAPACK) nodes");
  if (!enif_get_list_length(env, argv[1], &n) || (int)n != info.n_inputs)
    return badarg(env, "[compile] expected a list of %d input binaries", info.n_inputs);
  const void *in[64];
  void *out[64];
  ERL_NIF_TERM outs[64], head, tail = argv[1];
  if (info.n_inputs > 64 || info.n_outputs > 64) return badarg(env, "[compile] tape_time_raw takes at most 64 inputs and outputs");
  for (int i = 0; i < info.n_inputs; i++) {
    ErlNifBinary b;
    enif_get_list_cell(env, tail, &head, &tail);
    const mx_array *h = mx_tape_input(t, i);
    if (!enif_inspect_binary(env, head, &b) || b.size != mx_nbytes(h))
      return badarg(env, "[compile] input %d must be a binary of %zu bytes", i, mx_nbytes(h));
    in[i] = b.data;
  }
  for (int j = 0; j < info.n_outputs; j++) {
    const mx_array *o = mx_tape_output(t, j);
    unsigned char *p = enif_make_new_binary(env, mx_nbytes(o), &outs[j]);
    if (!p) return raise_with(env, atom_mx_error, "[compile] out of memory");
    out[j] = p;
  }
  mx_status st = mx_tape_run_raw(t, in, out); /* the first call sets the context up */
  struct timespec a, b, ca, cb;
  clock_gettime(CLOCK_MONOTONIC, &a);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
  for (long r = 0; r < reps && !st; r++) st = mx_tape_run_raw(t, in, out);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
  clock_gettime(CLOCK_MONOTONIC, &b);
  if (st) return raise_mx(env);
  int64_t ns = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
  int64_t cpu = (int64_t)(cb.tv_sec - ca.tv_sec) * 1000000000 + (cb.tv_nsec - ca.tv_nsec);
  return enif_make_tuple3(env, enif_make_int64(env, ns), enif_make_list_from_array(env, outs, (unsigned)info.n_outputs),
                          enif_make_int64(env, cpu));
}

/* ---- io: Mx.IO reads tensors from files by offset (dirty IO: a large read takes long) ------- */

/* from_file(path, offset, dtype, shape): the bytes at offset, read straight into a new array. */
static ERL_NIF_TERM from_file(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
  (void)argc;
  ErlNifBinary p;
  char path[4096];
  ErlNifUInt64 offset;
  mx_dtype t;
  int64_t shape[MX_MAX_RANK];
  int nd;
  if (!enif_inspect_binary(env, argv[0], &p) || p.size == 0 || p.size >= sizeof path || memchr(p.data, 0, p.size))
    return badarg(env, "[from_file] the path must be a non-empty binary of under %zu bytes without NUL", sizeof path);
  memcpy(path, p.data, p.size);
  path[p.size] = 0;
  if (!enif_get_uint64(env, argv[1], &offset)) return badarg(env, "[from_file] offset must be a non-negative integer");
  if (!get_dtype(argv[2], &t)) return badarg(env, "[from_file] unknown dtype; use one of Mx.Type.names()");
  if (!get_ints(env, argv[3], shape, &nd)) return badarg(env, "[from_file] shape must be a tuple of at most %d integers", MX_MAX_RANK);
  mx_array *out;
  return result(env, mx_from_file(path, offset, t, nd, shape, &out), &out);
}

static ErlNifFunc funcs[] = {
    /* graph building: normal schedulers, well under a millisecond */
    {"from_binary", 3, from_binary_probed, 0},
    {"full", 3, full_probed, 0},
    {"iota", 3, iota_probed, 0},
    {"arange", 4, arange_probed, 0},
    {"linspace", 5, linspace_probed, 0},
    {"eye", 3, eye_probed, 0},
    {"unary", 2, unary_probed, 0},
    {"binary", 3, binary_probed, 0},
    {"as_type", 2, as_type_probed, 0},
    {"bitcast", 2, bitcast_nif_probed, 0},
    {"select", 3, select_nif_probed, 0},
    {"clip", 3, clip_probed, 0},
    {"reduce", 4, reduce_probed, 0},
    {"scan", 4, scan_probed, 0},
    {"sort", 4, sort_probed, 0},
    {"matmul", 2, matmul_probed, 0},
    {"reshape", 2, reshape_probed, 0},
    {"broadcast", 2, broadcast_probed, 0},
    {"transpose", 2, transpose_probed, 0},
    {"squeeze", 2, squeeze_probed, 0},
    {"new_axis", 2, new_axis_probed, 0},
    {"reverse", 2, reverse_probed, 0},
    {"concatenate", 2, concatenate_probed, 0},
    {"stack", 2, stack_probed, 0},
    {"slice", 4, slice_probed, 0},
    {"pad", 5, pad_probed, 0},
    {"take", 3, take_probed, 0},
    {"take_along_axis", 3, take_along_axis_probed, 0},
    {"gather", 2, gather_probed, 0},
    {"indexed", 4, indexed_probed, 0},
    /* transforms */
    {"trace_input", 1, trace_input_probed, 0},
    {"stop_gradient", 1, stop_gradient_probed, 0},
    {"vjp", 3, vjp_probed, 0},
    {"vmap", 4, vmap_probed, 0},
    /* random */
    {"random", 6, random_nif_probed, 0},
    /* linalg */
    {"linalg", 3, linalg_probed, 0},
    /* fft */
    {"fft", 5, fft_nif_probed, 0},
    /* special */
    {"betainc", 3, betainc_nif_probed, 0},
    /* data: inline when tiny, rescheduled to a dirty CPU scheduler when large */
    {"eval", 1, eval_probed, 0},
    {"to_binary", 1, to_binary_probed, 0},
    /* always dirty: for benchmarks and callers that know the work is large */
    {"eval_dirty", 1, eval_now, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"noop_dirty", 0, noop, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    /* bookkeeping */
    {"evaluated?", 1, is_evaluated_probed, 0},
    {"state", 1, state_probed, 0},
    {"dispose", 1, dispose_probed, 0},
    {"memory_report", 0, memory_report_probed, 0},
    {"set_cache_limit", 1, set_cache_limit_probed, 0},
    {"set_memory_limit", 1, set_memory_limit_probed, 0},
    {"reset_peak", 0, reset_peak_probed, 0},
    {"clear_cache", 0, clear_cache_probed, 0},
    {"set_dirty_threshold", 1, set_dirty_threshold_probed, 0},
    {"op_names", 0, op_names_probed, 0},
    {"op_grads", 0, op_grads_probed, 0},
    {"noop", 0, noop_probed, 0},
    {"probe", 1, probe, 0},
    /* compile: capture is dirty (it may evaluate constants); calls replay where an eval would run */
    {"placeholder", 2, placeholder_probed, 0},
    {"compile_cache", 1, compile_cache_probed, 0},
    {"compile_capture", 5, compile_capture, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"compile_fallback", 2, compile_fallback_probed, 0},
    {"compile_call", 3, compile_call_probed, 0},
    {"compile_run", 2, compile_run_probed, 0},
    {"compile_stats", 1, compile_stats_probed, 0},
    {"tape_info", 1, tape_info_probed, 0},
    /* samplers: the run is on an engine thread; results copy up to samples x d f64 (dirty) */
    {"sampler_start", 3, sampler_start_probed, 0},
    {"sampler_reply", 2, sampler_reply_probed, 0},
    {"sampler_cancel", 1, sampler_cancel_probed, 0},
    {"sampler_result", 1, sampler_result, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"sampler_run_inline", 2, sampler_run_inline_probed, 0}, /* only short runs: see it */
    /* generated C (jit.c): generating the source may take a while on a large tape */
    {"tape_jit", 2, tape_jit, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"tape_jit_info", 1, tape_jit_info, 0},
    {"tape_jit_wait", 2, tape_jit_wait, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"compile_lookup", 2, compile_lookup, 0},
    {"tape_jit_source", 1, tape_jit_source, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"tape_time_raw", 3, tape_time_raw, ERL_NIF_DIRTY_JOB_CPU_BOUND}, /* benchmarks */
    /* convolution and window reductions: graph building */
    {"conv", 9, conv_probed, 0},
    {"window", 7, window_probed, 0},
    {"window_scatter", 8, window_scatter_probed, 0},
    /* quantization as MLX does it: graph building */
    {"quantize", 3, quantize_probed, 0},
    {"dequantize", 5, dequantize_probed, 0},
    {"quantized_matmul", 7, quantized_matmul_probed, 0},
    /* fused scaled-dot-product attention: graph building */
    {"scaled_dot_product_attention", 5, scaled_dot_product_attention_probed, 0},
    /* io (Mx.IO) */
    {"from_file", 4, from_file, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"compile_clear", 1, compile_clear, 0},
};

static int load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info) {
  (void)priv, (void)info;
  ARRAY = enif_open_resource_type(env, NULL, "mx_array", array_dtor, ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, NULL);
  if (!ARRAY) return 1;
  TAPE = enif_open_resource_type(env, NULL, "mx_tape", tape_dtor, ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, NULL);
  CACHE = enif_open_resource_type(env, NULL, "mx_compile_cache", cache_dtor, ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, NULL);
  if (!TAPE || !CACHE) return 1;
  ErlNifResourceTypeInit sampler_init = {.dtor = sampler_dtor, .down = sampler_down};
  SAMPLER = enif_open_resource_type_x(env, "mx_sampler", &sampler_init, ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, NULL);
  if (!SAMPLER) return 1;
  atom_ok = enif_make_atom(env, "ok");
  atom_nil = enif_make_atom(env, "nil");
  atom_true = enif_make_atom(env, "true");
  atom_false = enif_make_atom(env, "false");
  atom_error = enif_make_atom(env, "error");
  atom_struct = enif_make_atom(env, "__struct__");
  atom_exception = enif_make_atom(env, "__exception__");
  atom_message = enif_make_atom(env, "message");
  atom_mx_error = enif_make_atom(env, "Elixir.Mx.Error");
  atom_argument_error = enif_make_atom(env, "Elixir.ArgumentError");
  for (int i = 0; i < MX_DTYPE_COUNT; i++) dtype_atoms[i] = enif_make_atom(env, mx_dtype_name((mx_dtype)i));
  for (int i = 0; i < MX_OP_COUNT; i++) op_atoms[i] = enif_make_atom(env, mx_ops[i].name);
  void *z = mmap(NULL, ZERO_REGION_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (z != MAP_FAILED) {
    zero_region = z;
    zero_region_bytes = ZERO_REGION_BYTES;
  }
#ifdef M_MMAP_THRESHOLD
  /* ERTS sets malloc's trim threshold (+MYtt), which freezes glibc's mmap threshold at 128 KiB: each
   * larger malloc (OpenBLAS's 516 KiB job table in every threaded gemm) was an mmap whose pages
   * faulted in and an munmap that flushed TLBs. 32 MiB is where glibc's own dynamic threshold stops;
   * the trim threshold goes with it, or each such free handed the pages back with madvise. */
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
  return 0;
}

static int upgrade(ErlNifEnv *env, void **priv, void **old, ERL_NIF_TERM info) {
  (void)old;
  return load(env, priv, info);
}

ERL_NIF_INIT(Elixir.Mx.NIF, funcs, load, NULL, upgrade, NULL)
