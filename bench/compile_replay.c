/* compile_replay.c: the interpreter tier without the BEAM. Builds the `simple` model's log
 * density in C ops (the direct form of Bench.NutsModels.simple_densities/2, on 50 made-up
 * observations), takes its gradient with mx_vjp, captures lp and the gradient as one tape
 * and times mx_tape_run_raw, as a C sampler calls it once per leapfrog step.
 * On a loaded machine, `perf stat -e instructions` over this program gives a
 * load-independent cost: CPU instructions per replayed tape instruction.
 *
 * Usage: compile_replay [replays] */
#include <string.h>
#include <time.h>

#include "bench_util.h"

static mx_array *bin(mx_op op, mx_array *a, mx_array *b) {
  mx_array *o;
  check(mx_binary(op, a, b, &o), mx_ops[op].name);
  return o;
}

static mx_array *un(mx_op op, mx_array *a) {
  mx_array *o;
  check(mx_unary(op, a, &o), mx_ops[op].name);
  return o;
}

static mx_array *num(double v) {
  mx_array *o;
  check(mx_full(MX_F64, 0, NULL, v, &o), "full");
  return o;
}

int main(int argc, char **argv) {
  long replays = argc > 1 ? atol(argv[1]) : 200000;
  if (replays < 1) replays = 200000;
  enum { N = 50 };
  double y[N];
  for (int i = 0; i < N; i++) y[i] = 0.3 * (i % 11) - 1.2;
  int64_t shape[1] = {N};
  mx_array *ys, *mu, *ls, *mut, *lst;
  check(mx_from_data(MX_F64, 1, shape, y, sizeof y, &ys), "data");
  check(mx_placeholder(MX_F64, 0, NULL, &mu), "placeholder");
  check(mx_placeholder(MX_F64, 0, NULL, &ls), "placeholder");
  check(mx_trace_input(mu, &mut), "trace_input");
  check(mx_trace_input(ls, &lst), "trace_input");
  /* sig = exp(ls); z = (y - mu) / sig; lp = -0.5 sum(z^2) - n ls - 0.005 mu^2 - sig + ls */
  mx_array *sig = un(MX_OP_EXP, lst), *z = bin(MX_OP_DIVIDE, bin(MX_OP_SUBTRACT, ys, mut), sig), *zz = bin(MX_OP_MULTIPLY, z, z);
  mx_array *s;
  check(mx_reduce(MX_OP_SUM, zz, NULL, -1, 0, &s), "sum");
  mx_array *ll = bin(MX_OP_SUBTRACT, bin(MX_OP_MULTIPLY, s, num(-0.5)), bin(MX_OP_MULTIPLY, lst, num(N)));
  mx_array *lp = bin(MX_OP_ADD, bin(MX_OP_ADD, ll, bin(MX_OP_MULTIPLY, un(MX_OP_SQUARE, mut), num(-0.005))),
                     bin(MX_OP_ADD, un(MX_OP_NEGATE, sig), lst));
  mx_array *wrt[2] = {mut, lst}, *grads[2], *one = num(1);
  check(mx_vjp(&lp, &one, 1, wrt, 2, grads), "vjp");
  mx_array *holders[2] = {mu, ls}, *outs[3] = {lp, grads[0], grads[1]};
  mx_tape *t;
  check(mx_tape_capture(holders, 2, outs, 3, &t), "capture");
  mx_tape_info info;
  mx_tape_info_get(t, &info);
  double q[2] = {0.5, 0.2}, r[3];
  const void *in[2] = {&q[0], &q[1]};
  void *out[3] = {&r[0], &r[1], &r[2]};
  check(mx_tape_run_raw(t, in, out), "run_raw");
  /* 20 segments: the median and the least per-segment CPU time (a loaded machine only adds) */
  double seg_cpu[20], seg_wall[20];
  long per = replays / 20 > 0 ? replays / 20 : 1;
  for (int sgm = 0; sgm < 20; sgm++) {
    struct timespec c0, c1;
    double t0 = now();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    for (long i = 0; i < per; i++) check(mx_tape_run_raw(t, in, out), "run_raw");
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    seg_wall[sgm] = (now() - t0) / (double)per * 1e9;
    seg_cpu[sgm] = ((double)(c1.tv_sec - c0.tv_sec) * 1e9 + (double)(c1.tv_nsec - c0.tv_nsec)) / (double)per;
  }
  double ns = median(seg_wall, 20), cpu = median(seg_cpu, 20), cpu_min = seg_cpu[0]; /* median sorted it */
  printf("compile_replay: simple's value_and_grad, %d instructions (%d fused in %d groups), lp %.6f grad %.6f %.6f\n",
         info.n_instructions, info.fused, info.groups, r[0], r[1], r[2]);
  print_load();
  printf("  wall: %.1f ns per replay, %.1f ns per instruction (median of 20 segments of %ld replays)\n", ns,
         ns / info.n_instructions, per);
  printf("  thread CPU: %.1f ns per replay, %.1f ns per instruction (least segment: %.1f, %.1f)\n", cpu,
         cpu / info.n_instructions, cpu_min, cpu_min / info.n_instructions);
  printf("kv replay_ns=%.2f\nkv replay_cpu_ns=%.2f\nkv replay_cpu_min_ns=%.2f\nkv instructions=%d\n", ns, cpu, cpu_min,
         info.n_instructions);
  return 0;
}
