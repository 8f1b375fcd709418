/* test_matmul_trans.c: mx_matmul on a pending transpose of the last two axes builds one
 * MATMUL node on the transpose's input with MX_MATMUL_TRANS_A/B (no copy), and its result
 * matches the copy path (transpose evaluated first): bit for bit for integers and bool, within
 * the float matmul bound k·u·Σ|a||b| (times 4) otherwise, for every dtype family, 1-row and
 * 1-column shapes (gemv), batched and broadcast operands; the cases that must not fuse;
 * and the kernel's shape check on a flagged node. Prints how many float cases were bit-identical
 * (here: every gemm; not the 1-row/1-column cases, where gemv's trans and no-trans kernels sum in
 * different orders, nor a stack of transposed A, which cannot be merged into one gemm). */
#include <complex.h>

#include "test_util.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double uniform(void) { return (double)(xorshift64(&rng) >> 11) * 0x1p-53 * 2 - 1; }

/* n random elements of t (floats uniform on [-1, 1), complex both parts, integers in [-3, 3], bool 0/1). */
static mx_array *random_array(mx_dtype t, int ndim, const int64_t *shape) {
  int64_t n = numel(ndim, shape);
  size_t es = (size_t)mx_dtype_size(t);
  char *buf = malloc(n ? (size_t)n * es : 1);
  for (int64_t i = 0; i < n; i++) {
    switch (t) {
    case MX_F32: ((float *)buf)[i] = (float)uniform(); break;
    case MX_F64: ((double *)buf)[i] = uniform(); break;
    case MX_C64: ((float complex *)buf)[i] = (float)uniform() + I * (float)uniform(); break;
    case MX_C128: ((double complex *)buf)[i] = uniform() + I * uniform(); break;
    case MX_BOOL: ((uint8_t *)buf)[i] = xorshift64(&rng) & 1; break;
    case MX_S32: ((int32_t *)buf)[i] = (int32_t)(xorshift64(&rng) % 7) - 3; break;
    case MX_U8: ((uint8_t *)buf)[i] = (uint8_t)(xorshift64(&rng) % 4); break;
    case MX_S64: ((int64_t *)buf)[i] = (int64_t)(xorshift64(&rng) % 7) - 3; break;
    default: break;
    }
  }
  mx_array *a = arr(t, ndim, shape, buf);
  free(buf);
  return a;
}

/* |x|, elementwise, as a double (complex: modulus). */
static double mag(mx_dtype t, const void *d, int64_t i) {
  switch (t) {
  case MX_F32: return fabs(((const float *)d)[i]);
  case MX_F64: return fabs(((const double *)d)[i]);
  case MX_C64: return cabsf(((const float complex *)d)[i]);
  case MX_C128: return cabs(((const double complex *)d)[i]);
  default: return 0;
  }
}

static mx_array *swap_last(mx_array *x, int pending) {
  int perm[MX_MAX_RANK];
  for (int d = 0; d < x->ndim; d++) perm[d] = d;
  perm[x->ndim - 2] = x->ndim - 1;
  perm[x->ndim - 1] = x->ndim - 2;
  mx_array *t = NULL;
  if (mx_transpose(x, perm, &t) != MX_OK) {
    printf("transpose failed: %s\n", mx_last_error());
    exit(2);
  }
  if (!pending && mx_eval(&t, 1) != MX_OK) exit(2);
  return t;
}

/* The MATMUL node under y: y itself, or the node a cast (storage dtype) wraps. */
static const mx_array *matmul_node(const mx_array *y) {
  while (y && y->op != MX_OP_MATMUL && y->in && y->n_in == 1) y = y->in[0];
  return y && y->op == MX_OP_MATMUL ? y : NULL;
}

static int bit_identical, float_cases;

/* op(A) @ op(B) with A stored sa (rank ra), B stored sb; ta/tb: the operand is a transpose. */
static void check_case(mx_dtype t, int ta, int tb, int ra, const int64_t *sa, int rb, const int64_t *sb) {
  char what[160];
  snprintf(what, sizeof what, "%s ta=%d tb=%d a[..%lld,%lld] b[..%lld,%lld] ranks %d,%d", mx_dtype_name(t), ta, tb,
           (long long)sa[ra - 2], (long long)sa[ra - 1], (long long)sb[rb - 2], (long long)sb[rb - 1], ra, rb);
  mx_array *a = random_array(t, ra, sa), *b = random_array(t, rb, sb);
  mx_array *pa = ta ? swap_last(a, 1) : (mx_retain(a), a), *pb = tb ? swap_last(b, 1) : (mx_retain(b), b);
  mx_array *ca = ta ? swap_last(a, 0) : (mx_retain(a), a), *cb = tb ? swap_last(b, 0) : (mx_retain(b), b);
  mx_array *fused = NULL, *copied = NULL;
  mx_status st = mx_matmul(pa, pb, &fused);
  if (!st) {
    const mx_array *node = matmul_node(fused);
    int want = (ta ? MX_MATMUL_TRANS_A : 0) | (tb ? MX_MATMUL_TRANS_B : 0);
    int got = node && node->params ? node->params->flags : 0;
    CHECK(node && got == want && (!ta || node->in[0]->op != MX_OP_TRANSPOSE) &&
              (!tb || node->in[1]->op != MX_OP_TRANSPOSE),
          "%s: matmul flags %d, want %d on the transposes' inputs", what, got, want);
  }
  run_check(st, &fused, what);
  run(mx_matmul(ca, cb, &copied), &copied, what);
  if (fused && copied) {
    const mx_array *cn = matmul_node(copied);
    CHECK(!cn || !cn->params, "%s: an evaluated transpose must not fuse", what);
    CHECK(same_shape(fused, copied->ndim, copied->shape), "%s: shapes differ", what);
    int64_t n = fused->size;
    if (mx_is_float(t) || mx_is_complex(t)) {
      /* the bound Σ_p |a_ip||b_pj| over the copied operands, per output element */
      int64_t k = ca->shape[ca->ndim - 1];
      mx_array *aa = NULL, *ab = NULL, *bound = NULL;
      mx_status s2 = mx_unary(MX_OP_ABS, ca, &aa);
      if (!s2) s2 = mx_unary(MX_OP_ABS, cb, &ab);
      if (!s2) s2 = mx_matmul(aa, ab, &bound);
      run(s2, &bound, "bound");
      double u = (t == MX_F32 || t == MX_C64) ? 0x1p-24 : 0x1p-53, worst = 0;
      int same = memcmp(mx_data(fused), mx_data(copied), mx_nbytes(fused)) == 0;
      for (int64_t i = 0; bound && i < n; i++) {
        double d;
        if (mx_is_complex(t)) {
          d = t == MX_C64 ? cabsf(((float complex *)mx_data(fused))[i] - ((float complex *)mx_data(copied))[i])
                          : cabs(((double complex *)mx_data(fused))[i] - ((double complex *)mx_data(copied))[i]);
        } else {
          d = fabs(value_at(fused, i) - value_at(copied, i));
        }
        double lim = 4 * (double)k * u * mag((mx_dtype)bound->dtype, mx_data(bound), i) * (mx_is_complex(t) ? 4 : 1);
        if (d > lim) worst = fmax(worst, d / lim);
      }
      CHECK(bound && worst == 0, "%s: differs from the copy path by %g of the rounding bound", what, worst);
      float_cases++;
      bit_identical += same;
      mx_release(aa);
      mx_release(ab);
      mx_release(bound);
    } else {
      CHECK(memcmp(mx_data(fused), mx_data(copied), mx_nbytes(fused)) == 0, "%s: integer results differ", what);
    }
  }
  mx_release(fused);
  mx_release(copied);
  mx_release(a);
  mx_release(b);
  mx_release(pa);
  mx_release(pb);
  mx_release(ca);
  mx_release(cb);
}

/* Stored shapes for op(A) [batch.., m, k] and op(B) [batch.., k, n]. */
static void shapes(int ta, int tb, int64_t m, int64_t k, int64_t n, int nba, const int64_t *ba, int nbb,
                   const int64_t *bb, mx_dtype t) {
  int64_t sa[MX_MAX_RANK], sb[MX_MAX_RANK];
  if (nba) memcpy(sa, ba, sizeof(int64_t) * (size_t)nba);
  if (nbb) memcpy(sb, bb, sizeof(int64_t) * (size_t)nbb);
  sa[nba] = ta ? k : m, sa[nba + 1] = ta ? m : k;
  sb[nbb] = tb ? n : k, sb[nbb + 1] = tb ? k : n;
  check_case(t, ta, tb, nba + 2, sa, nbb + 2, sb);
}

static void no_fusion(void) {
  int64_t s3[3] = {2, 3, 4}, s2[2] = {4, 5};
  mx_array *a = random_array(MX_F32, 3, s3), *b = random_array(MX_F32, 2, s2), *t = NULL, *y = NULL;
  /* a transpose that moves a batch axis is not a swap of the last two */
  int perm[3] = {2, 0, 1};
  mx_transpose(a, perm, &t);
  mx_array *w = random_array(MX_F32, 2, (int64_t[]){3, 5});
  mx_status st = mx_matmul(t, w, &y);
  CHECK(!st && !matmul_node(y)->params && matmul_node(y)->in[0] == t, "a general permutation must stay a copy: %s",
        st ? mx_last_error() : "flagged");
  mx_release(y);
  mx_release(t);
  /* a flagged node whose stored operand does not chain raises in the kernel, naming op(a) */
  mx_params p = {.flags = MX_MATMUL_TRANS_A};
  mx_array *in[2] = {b, w}, *bad = NULL;
  st = mx_node_new(MX_OP_MATMUL, MX_F32, 2, (int64_t[]){5, 5}, 2, in, &p, &bad);
  if (!st) st = mx_eval(&bad, 1);
  CHECK(st == MX_EINVAL && strstr(mx_last_error(), "[matmul] shapes do not chain: op(a) [..., 5, 4]"),
        "flagged shape check: %d %s", st, mx_last_error());
  mx_release(bad);
  mx_release(w);
  mx_release(a);
  mx_release(b);
}

int main(void) {
  mx_dtype types[] = {MX_F32, MX_F64, MX_C64, MX_C128, MX_S32, MX_S64, MX_U8, MX_BOOL};
  int64_t dims[][3] = {{1, 7, 5}, {6, 7, 1}, {1, 9, 1}, {5, 1, 4}, {33, 17, 29}, {130, 40, 70}};
  int64_t b3[1] = {3}, b21[2] = {2, 1}, b4[2] = {1, 4};
  for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
          shapes(ta, tb, dims[di][0], dims[di][1], dims[di][2], 0, NULL, 0, NULL, types[ti]);
        /* a stack against one matrix, one matrix against a stack, both broadcast */
        shapes(ta, tb, 4, 6, 5, 1, b3, 0, NULL, types[ti]);
        shapes(ta, tb, 1, 6, 5, 1, b3, 0, NULL, types[ti]);
        shapes(ta, tb, 4, 6, 5, 0, NULL, 1, b3, types[ti]);
        shapes(ta, tb, 4, 6, 1, 2, b21, 2, b4, types[ti]);
      }
  no_fusion();
  printf("float/complex cases bit-identical to the copy path: %d of %d\n", bit_identical, float_cases);
  return test_summary("matmul_trans: ");
}
