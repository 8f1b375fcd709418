/* op_build.c: the engine's share of building one lazy op, without the BEAM:
 * mx_binary(ADD) on two f32[4] arrays, then mx_release of the node (what the
 * resource destructor does when the term is garbage collected); and the
 * engine's share of evaluating a tiny graph (3 scalar ops) and freeing it.
 * Compare with bench/op_build.exs, which times the same through the NIFs.
 *
 * Usage: op_build [calls_per_batch] [batches]
 * Under callgrind (deterministic instruction counts): `make -C bench callgrind`. */
#include "bench_util.h"

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10000;
  int batches = argc > 2 ? atoi(argv[2]) : 21;
  if (n < 1) n = 10000;
  if (batches < 1) batches = 21;

  float d[4] = {1, 2, 3, 4};
  int64_t shape[1] = {4};
  mx_array *a, *b, *x, **nodes = malloc(sizeof(mx_array *) * (size_t)n);
  check(mx_from_data(MX_F32, 1, shape, d, sizeof d, &a), "mx_from_data");
  check(mx_from_data(MX_F32, 1, shape, d, sizeof d, &b), "mx_from_data");
  check(mx_from_data(MX_F32, 0, shape, d, sizeof(float), &x), "mx_from_data");

  double *tb = malloc(sizeof(double) * (size_t)batches), *tr = malloc(sizeof(double) * (size_t)batches);
  double *tt = malloc(sizeof(double) * (size_t)batches);
  for (int r = -1; r < batches; r++) { /* r = -1 warms malloc's caches */
    /* build n nodes, then release them all: like a batch of terms dying in one GC */
    double t0 = now();
    for (int i = 0; i < n; i++) check(mx_binary(MX_OP_ADD, a, b, &nodes[i]), "mx_binary");
    double t1 = now();
    for (int i = 0; i < n; i++) mx_release(nodes[i]);
    double t2 = now();
    /* tiny graph: exp(x * x + x) on an f32 scalar, built, evaluated and freed */
    for (int i = 0; i < n; i++) {
      mx_array *m, *s, *e;
      check(mx_binary(MX_OP_MULTIPLY, x, x, &m), "mx_binary");
      check(mx_binary(MX_OP_ADD, m, x, &s), "mx_binary");
      check(mx_unary(MX_OP_EXP, s, &e), "mx_unary");
      mx_release(m);
      mx_release(s);
      check(mx_eval(&e, 1), "mx_eval");
      mx_release(e);
    }
    double t3 = now();
    if (r < 0) continue;
    tb[r] = (t1 - t0) / n * 1e9;
    tr[r] = (t2 - t1) / n * 1e9;
    tt[r] = (t3 - t2) / n * 1e9;
  }
  printf("op_build (C, no BEAM): %d batches of %d, median of batch means\n", batches, n);
  print_load();
  printf("  mx_binary(add, f32[4], f32[4])              %8.1f ns\n", median(tb, batches));
  printf("  mx_release of that node                     %8.1f ns\n", median(tr, batches));
  printf("  tiny graph: build 3 ops + mx_eval + release %8.1f ns\n", median(tt, batches));
  mx_release(a);
  mx_release(b);
  mx_release(x);
  free(nodes);
  free(tb);
  free(tr);
  free(tt);
  return 0;
}
