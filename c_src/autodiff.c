/* autodiff.c: reverse mode on the lazy graph. mx_vjp walks back from the
 * outputs to the traced inputs and applies one rule per primitive (the vjp
 * column of ops.def). Rules build ordinary nodes, so a gradient is itself a
 * graph: lazy, differentiable again (grad of grad), and linear in its
 * cotangent (jvp is the vjp of the vjp, see lib/mx/transforms.ex). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "ops_internal.h"

/* ---- a builder: ops with a sticky status, temporaries released at the end ---- */

#define MAX_TMP 48
typedef struct {
  mx_status st;
  int n;
  mx_array *tmp[MAX_TMP];
} bld;

/* Takes &result so the status is computed before the result is read. */
static mx_array *keep(bld *b, mx_status st, mx_array **ap) {
  mx_array *a = *ap;
  if (st) {
    b->st = st;
    return NULL;
  }
  if (b->n == MAX_TMP) {
    mx_release(a);
    b->st = mx_error(MX_ENOMEM, "[vjp] a gradient rule built too many temporaries");
    return NULL;
  }
  b->tmp[b->n++] = a;
  return a;
}

static mx_array *un(bld *b, mx_op op, mx_array *x) {
  mx_array *o = NULL;
  if (b->st || !x) return NULL;
  return keep(b, mx_unary(op, x, &o), &o);
}

static mx_array *bin(bld *b, mx_op op, mx_array *x, mx_array *y) {
  mx_array *o = NULL;
  if (b->st || !x || !y) return NULL;
  return keep(b, mx_binary(op, x, y, &o), &o);
}

#define ADD(x, y) bin(b, MX_OP_ADD, x, y)
#define SUB(x, y) bin(b, MX_OP_SUBTRACT, x, y)
#define MUL(x, y) bin(b, MX_OP_MULTIPLY, x, y)
#define DIV(x, y) bin(b, MX_OP_DIVIDE, x, y)

/* A rank-0 constant of a's dtype. */
static mx_array *scalar(bld *b, double v, const mx_array *like) {
  mx_array *o = NULL;
  if (b->st || !like) return NULL;
  return keep(b, mx_full((mx_dtype)like->dtype, 0, NULL, v, &o), &o);
}

static mx_array *zeros_like(bld *b, const mx_array *like) {
  mx_array *o = NULL;
  if (b->st) return NULL;
  return keep(b, mx_full((mx_dtype)like->dtype, like->ndim, like->shape, 0, &o), &o);
}

static mx_array *cast(bld *b, mx_array *x, mx_dtype t) {
  mx_array *o = NULL;
  if (b->st || !x) return NULL;
  return keep(b, mx_cast(x, t, &o), &o);
}

static mx_array *reshape(bld *b, mx_array *x, int ndim, const int64_t *shape) {
  mx_array *o = NULL;
  if (b->st || !x) return NULL;
  return keep(b, mx_reshape(x, ndim, shape, &o), &o);
}

static mx_array *transpose(bld *b, mx_array *x, const int *perm) {
  mx_array *o = NULL;
  if (b->st || !x) return NULL;
  return keep(b, mx_transpose(x, perm, &o), &o);
}

static mx_array *sum(bld *b, mx_array *x, const int *axes, int n, int keep_axes) {
  mx_array *o = NULL;
  if (b->st || !x) return NULL;
  return keep(b, mx_reduce(MX_OP_SUM, x, axes, n, keep_axes, &o), &o);
}

static mx_array *broadcast(bld *b, mx_array *x, const mx_array *like) {
  mx_array *o = NULL;
  if (b->st || !x) return NULL;
  return keep(b, mx_broadcast_to(x, like->ndim, like->shape, &o), &o);
}

static mx_array *select3(bld *b, mx_array *p, mx_array *x, mx_array *y) {
  mx_array *o = NULL;
  if (b->st || !p || !x || !y) return NULL;
  return keep(b, mx_select(p, x, y, &o), &o);
}

/* Hands a result to the caller (one new reference). */
static mx_array *out(bld *b, mx_array *x) {
  if (b->st || !x) return NULL;
  mx_retain(x);
  return x;
}

static mx_status finish(bld *b) {
  for (int i = 0; i < b->n; i++) mx_release(b->tmp[i]);
  return b->st;
}

/* Sums g over the axes that broadcasting added or stretched, back to like's shape. */
static mx_array *unbroadcast(bld *b, mx_array *g, const mx_array *like) {
  if (b->st || !g) return NULL;
  if (g->ndim == like->ndim && !memcmp(g->shape, like->shape, sizeof(int64_t) * (size_t)g->ndim)) return g;
  int axes[MX_MAX_RANK], n = 0, lead = g->ndim - like->ndim;
  for (int i = 0; i < g->ndim; i++)
    if (i < lead || (like->shape[i - lead] == 1 && g->shape[i] != 1)) axes[n++] = i;
  return reshape(b, sum(b, g, axes, n, 1), like->ndim, like->shape);
}

/* A reduced cotangent with the reduced axes put back as size 1, then broadcast to like. */
static mx_array *expand_reduced(bld *b, mx_array *g, const mx_array *node, const mx_array *like) {
  if (b->st || !g) return NULL;
  int64_t shape[MX_MAX_RANK];
  int reduced[MX_MAX_RANK] = {0};
  for (int i = 0; i < node->params->nip; i++) reduced[node->params->ip[i]] = 1;
  for (int i = 0; i < like->ndim; i++) shape[i] = reduced[i] ? 1 : like->shape[i];
  return reshape(b, g, like->ndim, shape);
}

/* ---- unary rules --------------------------------------------------------------- */

#define RULE(ID) mx_status mx_vjp_##ID(mx_array *node, mx_array *const *in, mx_array *g, mx_array **gin)
#define BEGIN \
  bld bb = {0}, *b = &bb; \
  (void)node, (void)in, (void)b
#define END return finish(b)

/* Complex -> real keeps the real part, whose transpose is real -> complex and back
 * (hence as_type, not the implicit cast, which refuses to drop an imaginary part). */
RULE(AS_TYPE) {
  BEGIN;
  mx_dtype t = (mx_dtype)in[0]->dtype;
  mx_array *o = NULL;
  if ((mx_is_float(t) || mx_is_complex(t)) && !b->st) gin[0] = out(b, keep(b, mx_as_type(g, t, &o), &o));
  END;
}
RULE(NEGATE) { BEGIN; gin[0] = out(b, un(b, MX_OP_NEGATE, g)); END; }
/* Complex: d|z| = Re(conj(z)/|z| dz), so the cotangent is g conj(z)/|z| (0 at z = 0). */
RULE(ABS) {
  BEGIN;
  if (mx_is_complex((mx_dtype)in[0]->dtype)) {
    mx_array *zero = scalar(b, 0, node), *at0 = bin(b, MX_OP_EQUAL, node, zero);
    mx_array *unit = DIV(un(b, MX_OP_CONJUGATE, in[0]), select3(b, at0, scalar(b, 1, node), node));
    gin[0] = out(b, MUL(g, select3(b, at0, scalar(b, 0, in[0]), unit)));
  } else {
    gin[0] = out(b, MUL(g, un(b, MX_OP_SIGN, in[0])));
  }
  END;
}
RULE(SQUARE) { BEGIN; gin[0] = out(b, MUL(g, MUL(scalar(b, 2, node), in[0]))); END; }
RULE(EXP) { BEGIN; gin[0] = out(b, MUL(g, node)); END; }
RULE(EXPM1) { BEGIN; gin[0] = out(b, MUL(g, ADD(node, scalar(b, 1, node)))); END; }
RULE(LOG) { BEGIN; gin[0] = out(b, DIV(g, in[0])); END; }
RULE(LOG1P) { BEGIN; gin[0] = out(b, DIV(g, ADD(in[0], scalar(b, 1, node)))); END; }
RULE(SQRT) { BEGIN; gin[0] = out(b, DIV(MUL(g, scalar(b, 0.5, node)), node)); END; }
RULE(RSQRT) { BEGIN; gin[0] = out(b, MUL(MUL(g, scalar(b, -0.5, node)), DIV(node, in[0]))); END; }
RULE(RECIPROCAL) { BEGIN; gin[0] = out(b, un(b, MX_OP_NEGATE, MUL(g, un(b, MX_OP_SQUARE, node)))); END; }
RULE(SIN) { BEGIN; gin[0] = out(b, MUL(g, un(b, MX_OP_COS, in[0]))); END; }
RULE(COS) { BEGIN; gin[0] = out(b, un(b, MX_OP_NEGATE, MUL(g, un(b, MX_OP_SIN, in[0])))); END; }
RULE(TAN) { BEGIN; gin[0] = out(b, MUL(g, ADD(scalar(b, 1, node), un(b, MX_OP_SQUARE, node)))); END; }
/* d asin = 1/sqrt(1 - x^2); d acos is its negation. */
RULE(ASIN) { BEGIN; gin[0] = out(b, MUL(g, un(b, MX_OP_RSQRT, SUB(scalar(b, 1, node), un(b, MX_OP_SQUARE, in[0]))))); END; }
RULE(ACOS) {
  BEGIN;
  gin[0] = out(b, un(b, MX_OP_NEGATE, MUL(g, un(b, MX_OP_RSQRT, SUB(scalar(b, 1, node), un(b, MX_OP_SQUARE, in[0]))))));
  END;
}
RULE(ATAN) { BEGIN; gin[0] = out(b, DIV(g, ADD(scalar(b, 1, node), un(b, MX_OP_SQUARE, in[0])))); END; }
/* d asinh = 1/sqrt(x^2 + 1) and d acosh = 1/sqrt((x - 1)(x + 1)) (no cancellation near 1); beyond
 * |x| > 1 (asinh) or x > 2 (acosh), x^2 would overflow for huge x: 1/(|x| sqrt(1 +- 1/x^2)) instead.
 * Each branch gets a safe input where it is not selected, so neither makes a NaN.
 * d atanh = 1/((1 - x)(1 + x)). */
RULE(ASINH) {
  BEGIN;
  mx_array *one = scalar(b, 1, node), *ax = un(b, MX_OP_ABS, in[0]);
  mx_array *big = bin(b, MX_OP_GREATER, ax, one);
  mx_array *xs = select3(b, big, ax, one), *xn = select3(b, big, one, in[0]);
  mx_array *r = un(b, MX_OP_RECIPROCAL, xs);
  mx_array *far = un(b, MX_OP_RECIPROCAL, MUL(xs, un(b, MX_OP_SQRT, ADD(one, un(b, MX_OP_SQUARE, r)))));
  mx_array *near = un(b, MX_OP_RSQRT, ADD(un(b, MX_OP_SQUARE, xn), one));
  gin[0] = out(b, MUL(g, select3(b, big, far, near)));
  END;
}
RULE(ACOSH) {
  BEGIN;
  mx_array *one = scalar(b, 1, node), *two = scalar(b, 2, node);
  mx_array *big = bin(b, MX_OP_GREATER, in[0], two);
  mx_array *xs = select3(b, big, in[0], two), *xn = select3(b, big, two, in[0]);
  mx_array *r = un(b, MX_OP_RECIPROCAL, xs);
  mx_array *far = un(b, MX_OP_RECIPROCAL, MUL(xs, un(b, MX_OP_SQRT, MUL(SUB(one, r), ADD(one, r)))));
  mx_array *near = un(b, MX_OP_RSQRT, MUL(SUB(xn, one), ADD(xn, one)));
  gin[0] = out(b, MUL(g, select3(b, big, far, near)));
  END;
}
RULE(ATANH) {
  BEGIN;
  mx_array *one = scalar(b, 1, node);
  gin[0] = out(b, DIV(g, MUL(SUB(one, in[0]), ADD(one, in[0]))));
  END;
}
/* d log2 = 1/(x ln 2); d log10 = 1/(x ln 10). */
RULE(LOG2) { BEGIN; gin[0] = out(b, DIV(g, MUL(in[0], scalar(b, M_LN2, node)))); END; }
RULE(LOG10) { BEGIN; gin[0] = out(b, DIV(g, MUL(in[0], scalar(b, M_LN10, node)))); END; }
RULE(SINH) { BEGIN; gin[0] = out(b, MUL(g, un(b, MX_OP_COSH, in[0]))); END; }
RULE(COSH) { BEGIN; gin[0] = out(b, MUL(g, un(b, MX_OP_SINH, in[0]))); END; }
RULE(TANH) { BEGIN; gin[0] = out(b, MUL(g, SUB(scalar(b, 1, node), un(b, MX_OP_SQUARE, node)))); END; }
RULE(SIGMOID) { BEGIN; gin[0] = out(b, MUL(g, MUL(node, SUB(scalar(b, 1, node), node)))); END; }
RULE(ERF) {
  BEGIN;
  mx_array *e = un(b, MX_OP_EXP, un(b, MX_OP_NEGATE, un(b, MX_OP_SQUARE, in[0])));
  gin[0] = out(b, MUL(g, MUL(scalar(b, 2 / sqrt(M_PI), node), e)));
  END;
}
RULE(ERF_INV) {
  BEGIN;
  mx_array *e = un(b, MX_OP_EXP, un(b, MX_OP_SQUARE, node));
  gin[0] = out(b, MUL(g, MUL(scalar(b, sqrt(M_PI) / 2, node), e)));
  END;
}
RULE(LGAMMA) { BEGIN; gin[0] = out(b, MUL(g, un(b, MX_OP_DIGAMMA, in[0]))); END; }

/* ---- special functions ------------------------------------------------------------ */

/* Bit i set: input i of the node being differentiated needs a cotangent (set by mx_vjp).
 * Lets a rule that covers only some inputs raise instead of returning a silent zero. */
static _Thread_local uint32_t vjp_needs;

/* u log v (log1p v with log1p), 0 where u == 0: a density's x^(a-1) at a = 1, x = 0 is 1, not NaN. */
static mx_array *xlog_(bld *b, mx_op log_op, mx_array *u, mx_array *v) {
  mx_array *is0 = bin(b, MX_OP_EQUAL, u, scalar(b, 0, u));
  return MUL(u, un(b, log_op, select3(b, is0, scalar(b, log_op == MX_OP_LOG ? 1 : 0, v), v)));
}

static mx_status no_shape_grad(const char *op, const char *params) {
  return mx_error(MX_EINVAL,
                  "[%s] has no gradient with respect to its shape parameter%s %s yet, only x; wrap %s in "
                  "Mx.stop_gradient/1 if it needs none",
                  op, params[1] ? "s" : "", params[1] ? "a and b" : "a", params[1] ? "them" : "it");
}

RULE(DIGAMMA) { BEGIN; gin[0] = out(b, MUL(g, un(b, MX_OP_TRIGAMMA, in[0]))); END; }
RULE(ERFC) {
  BEGIN;
  mx_array *e = un(b, MX_OP_EXP, un(b, MX_OP_NEGATE, un(b, MX_OP_SQUARE, in[0])));
  gin[0] = out(b, MUL(g, MUL(scalar(b, -2 / sqrt(M_PI), node), e)));
  END;
}
/* d log Phi = phi / Phi: exp(log phi - log Phi) for x >= -20; below, where both logs are
 * ~ -x^2/2 and their difference would lose u x^2, the asymptotic -x / (1 - 1/x^2 + 3/x^4 - ...)
 * (8 terms: 3e-15 at -20). Each branch sees x clamped to its side, so neither overflows. */
RULE(LOG_NDTR) {
  BEGIN;
  mx_array *lim = scalar(b, -20, node), *tail = bin(b, MX_OP_LESS, in[0], lim);
  mx_array *xc = bin(b, MX_OP_MAX, in[0], lim), *xt = bin(b, MX_OP_MIN, in[0], lim);
  mx_array *log_phi = SUB(MUL(un(b, MX_OP_SQUARE, xc), scalar(b, -0.5, node)), scalar(b, 0.5 * log(2 * M_PI), node));
  mx_array *central = un(b, MX_OP_EXP, SUB(log_phi, un(b, MX_OP_LOG_NDTR, xc)));
  mx_array *t = un(b, MX_OP_RECIPROCAL, un(b, MX_OP_SQUARE, xt)), *s = scalar(b, -13.0 * 11 * 9 * 7 * 5 * 3, node);
  for (int k = 6; k >= 0; k--) { /* sum_k (-1)^k (2k-1)!! t^k by Horner */
    double c = 1;
    for (int j = 2 * k - 1; j > 1; j -= 2) c *= j;
    s = ADD(MUL(s, t), scalar(b, k % 2 ? -c : c, node));
  }
  mx_array *mills = DIV(un(b, MX_OP_NEGATE, xt), s);
  gin[0] = out(b, MUL(g, select3(b, tail, mills, central)));
  END;
}
RULE(NDTRI) {
  BEGIN;
  mx_array *e = un(b, MX_OP_EXP, MUL(un(b, MX_OP_SQUARE, node), scalar(b, 0.5, node)));
  gin[0] = out(b, MUL(g, MUL(scalar(b, sqrt(2 * M_PI), node), e)));
  END;
}
/* dP/dx = x^(a-1) e^-x / Gamma(a) = -dQ/dx. */
static mx_status igamma_vjp(mx_array *node, mx_array *const *in, mx_array *g, mx_array **gin, double sign) {
  if (vjp_needs & 1) return no_shape_grad(mx_ops[node->op].name, "a");
  bld bb = {0}, *b = &bb;
  mx_array *am1 = SUB(in[0], scalar(b, 1, node));
  mx_array *log_dens = SUB(SUB(xlog_(b, MX_OP_LOG, am1, in[1]), in[1]), un(b, MX_OP_LGAMMA, in[0]));
  gin[1] = out(b, unbroadcast(b, MUL(g, MUL(scalar(b, sign, node), un(b, MX_OP_EXP, log_dens))), in[1]));
  return finish(b);
}
RULE(IGAMMA) { return igamma_vjp(node, in, g, gin, 1); }
RULE(IGAMMAC) { return igamma_vjp(node, in, g, gin, -1); }
/* dI/dx = x^(a-1) (1-x)^(b-1) / B(a, b). */
RULE(BETAINC) {
  if (vjp_needs & 3) return no_shape_grad("betainc", "ab");
  BEGIN;
  mx_array *one = scalar(b, 1, node);
  mx_array *lbeta = SUB(ADD(un(b, MX_OP_LGAMMA, in[0]), un(b, MX_OP_LGAMMA, in[1])), un(b, MX_OP_LGAMMA, ADD(in[0], in[1])));
  mx_array *log_dens = SUB(ADD(xlog_(b, MX_OP_LOG, SUB(in[0], one), in[2]),
                               xlog_(b, MX_OP_LOG1P, SUB(in[1], one), un(b, MX_OP_NEGATE, in[2]))), lbeta);
  gin[2] = out(b, unbroadcast(b, MUL(g, un(b, MX_OP_EXP, log_dens)), in[2]));
  END;
}

/* ---- binary rules ---------------------------------------------------------------- */

RULE(ADD) {
  BEGIN;
  gin[0] = out(b, unbroadcast(b, g, in[0]));
  gin[1] = out(b, unbroadcast(b, g, in[1]));
  END;
}
RULE(SUBTRACT) {
  BEGIN;
  gin[0] = out(b, unbroadcast(b, g, in[0]));
  gin[1] = out(b, unbroadcast(b, un(b, MX_OP_NEGATE, g), in[1]));
  END;
}
RULE(MULTIPLY) {
  BEGIN;
  gin[0] = out(b, unbroadcast(b, MUL(g, in[1]), in[0]));
  gin[1] = out(b, unbroadcast(b, MUL(g, in[0]), in[1]));
  END;
}
RULE(DIVIDE) {
  BEGIN;
  mx_array *ga = DIV(g, in[1]);
  gin[0] = out(b, unbroadcast(b, ga, in[0]));
  gin[1] = out(b, unbroadcast(b, un(b, MX_OP_NEGATE, MUL(ga, node)), in[1]));
  END;
}
/* d/da a^b = b a^(b-1); d/db a^b = a^b log a, taken as 0 where a <= 0. */
RULE(POW) {
  BEGIN;
  mx_array *one = scalar(b, 1, node), *zero = scalar(b, 0, node);
  mx_array *ga = MUL(g, MUL(in[1], bin(b, MX_OP_POW, in[0], SUB(in[1], one))));
  mx_array *pos = bin(b, MX_OP_GREATER, in[0], zero);
  mx_array *safe = select3(b, pos, in[0], one);
  mx_array *gb = select3(b, pos, MUL(g, MUL(node, un(b, MX_OP_LOG, safe))), zero);
  gin[0] = out(b, unbroadcast(b, ga, in[0]));
  gin[1] = out(b, unbroadcast(b, gb, in[1]));
  END;
}
/* Ties send the gradient to the first argument. */
static mx_status minmax(mx_array *const *in, mx_array *g, mx_array **gin, mx_op cmp) {
  bld bb = {0}, *b = &bb;
  mx_array *first = bin(b, cmp, in[0], in[1]);
  mx_array *zero = scalar(b, 0, g);
  gin[0] = out(b, unbroadcast(b, select3(b, first, g, zero), in[0]));
  gin[1] = out(b, unbroadcast(b, select3(b, first, zero, g), in[1]));
  return finish(b);
}
RULE(MAX) { (void)node; return minmax(in, g, gin, MX_OP_GREATER_EQUAL); }
RULE(MIN) { (void)node; return minmax(in, g, gin, MX_OP_LESS_EQUAL); }
/* a rem b = a - trunc(a/b) b, so d/db = -trunc(a/b) = -(a - out)/b. */
RULE(REMAINDER) {
  BEGIN;
  gin[0] = out(b, unbroadcast(b, g, in[0]));
  gin[1] = out(b, unbroadcast(b, un(b, MX_OP_NEGATE, MUL(g, DIV(SUB(in[0], node), in[1]))), in[1]));
  END;
}
RULE(ATAN2) {
  BEGIN;
  mx_array *d = DIV(g, ADD(un(b, MX_OP_SQUARE, in[0]), un(b, MX_OP_SQUARE, in[1])));
  gin[0] = out(b, unbroadcast(b, MUL(d, in[1]), in[0]));
  gin[1] = out(b, unbroadcast(b, un(b, MX_OP_NEGATE, MUL(d, in[0])), in[1]));
  END;
}
RULE(LOGADDEXP) {
  BEGIN;
  gin[0] = out(b, unbroadcast(b, MUL(g, un(b, MX_OP_EXP, SUB(in[0], node))), in[0]));
  gin[1] = out(b, unbroadcast(b, MUL(g, un(b, MX_OP_EXP, SUB(in[1], node))), in[1]));
  END;
}
RULE(SELECT) {
  BEGIN;
  mx_array *zero = scalar(b, 0, node);
  gin[1] = out(b, unbroadcast(b, select3(b, in[0], g, zero), in[1]));
  gin[2] = out(b, unbroadcast(b, select3(b, in[0], zero, g), in[2]));
  END;
}

/* ---- reductions and scans ------------------------------------------------------- */

RULE(SUM) { BEGIN; gin[0] = out(b, broadcast(b, expand_reduced(b, g, node, in[0]), in[0])); END; }
/* d prod / d x_i = prod / x_i (inputs equal to 0 give NaN/inf: a documented limitation). */
RULE(PRODUCT) {
  BEGIN;
  mx_array *gk = expand_reduced(b, g, node, in[0]), *pk = expand_reduced(b, node, node, in[0]);
  gin[0] = out(b, DIV(MUL(gk, pk), in[0]));
  END;
}
/* Ties share the gradient equally. */
static mx_status extreme(mx_array *node, mx_array *const *in, mx_array *g, mx_array **gin) {
  bld bb = {0}, *b = &bb;
  mx_array *hit = cast(b, bin(b, MX_OP_EQUAL, in[0], expand_reduced(b, node, node, in[0])), (mx_dtype)node->dtype);
  int axes[MX_MAX_RANK];
  for (int i = 0; i < node->params->nip; i++) axes[i] = (int)node->params->ip[i];
  mx_array *count = sum(b, hit, axes, node->params->nip, 1);
  gin[0] = out(b, MUL(DIV(hit, count), expand_reduced(b, g, node, in[0])));
  return finish(b);
}
RULE(REDUCE_MAX) { return extreme(node, in, g, gin); }
RULE(REDUCE_MIN) { return extreme(node, in, g, gin); }

static mx_array *scan(bld *b, mx_op op, mx_array *x, int axis, int reverse) {
  mx_array *o = NULL;
  if (b->st || !x) return NULL;
  return keep(b, mx_scan(op, x, axis, reverse, &o), &o);
}
RULE(CUMULATIVE_SUM) {
  BEGIN;
  int rev = node->params->flags & MX_F_REVERSE;
  gin[0] = out(b, scan(b, MX_OP_CUMULATIVE_SUM, g, node->params->axis, !rev));
  END;
}
/* d out_j / d x_i = out_j / x_i for j >= i (zeros in x give NaN/inf, as for product). */
RULE(CUMULATIVE_PRODUCT) {
  BEGIN;
  int rev = node->params->flags & MX_F_REVERSE;
  gin[0] = out(b, DIV(scan(b, MX_OP_CUMULATIVE_SUM, MUL(g, node), node->params->axis, !rev), in[0]));
  END;
}

/* ---- shape and indexing ----------------------------------------------------------- */

RULE(RESHAPE) { BEGIN; gin[0] = out(b, reshape(b, g, in[0]->ndim, in[0]->shape)); END; }
RULE(TRANSPOSE) {
  BEGIN;
  int inv[MX_MAX_RANK];
  for (int i = 0; i < node->ndim; i++) inv[node->params->ip[i]] = i;
  gin[0] = out(b, transpose(b, g, inv));
  END;
}
RULE(BROADCAST) { BEGIN; gin[0] = out(b, unbroadcast(b, g, in[0])); END; }

static mx_array *slice(bld *b, mx_array *x, const int64_t *start, const int64_t *stop, const int64_t *stride) {
  mx_array *o = NULL;
  if (b->st || !x) return NULL;
  return keep(b, mx_slice(x, start, stop, stride, &o), &o);
}
static mx_array *pad(bld *b, mx_array *x, const int64_t *lo, const int64_t *hi, const int64_t *interior) {
  mx_array *o = NULL;
  if (b->st || !x) return NULL;
  mx_array *z = scalar(b, 0, x);
  if (!z) return NULL;
  return keep(b, mx_pad(x, z, lo, hi, interior, &o), &o);
}

RULE(CONCATENATE) {
  BEGIN;
  int ax = node->params->axis;
  int64_t start[MX_MAX_RANK] = {0}, stop[MX_MAX_RANK], stride[MX_MAX_RANK];
  for (int d = 0; d < node->ndim; d++) {
    stop[d] = node->shape[d];
    stride[d] = 1;
  }
  for (int i = 0; i < node->n_in && !b->st; i++) {
    stop[ax] = start[ax] + in[i]->shape[ax];
    gin[i] = out(b, slice(b, g, start, stop, stride));
    start[ax] = stop[ax];
  }
  END;
}
/* The slice's cotangent lands back in place: zeros around it and between strides. */
RULE(SLICE) {
  BEGIN;
  const mx_array *a = in[0];
  int r = a->ndim, empty = 0;
  int64_t lo[MX_MAX_RANK], hi[MX_MAX_RANK], interior[MX_MAX_RANK];
  for (int d = 0; d < r; d++) {
    int64_t s = node->params->ip[d], k = node->params->ip[r + d], n = node->shape[d];
    empty |= n == 0;
    lo[d] = s;
    interior[d] = k - 1;
    hi[d] = n > 0 ? a->shape[d] - (s + (n - 1) * k + 1) : 0;
  }
  gin[0] = out(b, empty ? zeros_like(b, a) : pad(b, g, lo, hi, interior));
  END;
}
/* Undo the crop (negative lo/hi) with zeros, then take every (interior+1)-th element. */
RULE(PAD) {
  BEGIN;
  const mx_array *a = in[0];
  int r = a->ndim, empty = 0;
  int64_t glo[MX_MAX_RANK], ghi[MX_MAX_RANK], zero[MX_MAX_RANK] = {0};
  int64_t start[MX_MAX_RANK], stop[MX_MAX_RANK], stride[MX_MAX_RANK];
  for (int d = 0; d < r; d++) {
    int64_t lo = node->params->ip[d], hi = node->params->ip[r + d], in_ = node->params->ip[2 * r + d];
    glo[d] = lo < 0 ? -lo : 0;
    ghi[d] = hi < 0 ? -hi : 0;
    start[d] = lo > 0 ? lo : 0;
    stride[d] = in_ + 1;
    stop[d] = a->shape[d] > 0 ? start[d] + (a->shape[d] - 1) * stride[d] + 1 : start[d];
    empty |= a->shape[d] == 0;
  }
  mx_array *full = pad(b, g, glo, ghi, zero);
  gin[0] = out(b, empty ? zeros_like(b, a) : slice(b, full, start, stop, stride));
  /* The pad value receives the rest of the cotangent. */
  mx_array *total = sum(b, g, NULL, -1, 0);
  gin[1] = out(b, empty ? total : SUB(total, sum(b, gin[0], NULL, -1, 0)));
  END;
}
RULE(REVERSE) {
  BEGIN;
  int axes[MX_MAX_RANK];
  for (int i = 0; i < node->params->nip; i++) axes[i] = (int)node->params->ip[i];
  mx_array *o = NULL;
  if (!b->st) gin[0] = out(b, keep(b, mx_reverse(g, axes, node->params->nip, &o), &o));
  END;
}

static mx_array *indexed_add(bld *b, mx_array *a, mx_array *idx, mx_array *upd) {
  mx_array *o = NULL;
  if (b->st || !a || !idx || !upd) return NULL;
  return keep(b, mx_indexed_add(a, idx, upd, &o), &o);
}
static mx_array *gather(bld *b, mx_array *a, mx_array *idx) {
  mx_array *o = NULL;
  if (b->st || !a || !idx) return NULL;
  return keep(b, mx_gather(a, idx, &o), &o);
}

/* Move the axis to the front, scatter-add the rows of g there, move it back. */
RULE(TAKE) {
  BEGIN;
  const mx_array *a = in[0], *idx = in[1];
  int ax = node->params->axis, r = a->ndim, q = idx->ndim;
  int perm[MX_MAX_RANK], k = 0;
  int64_t zshape[MX_MAX_RANK], gshape[MX_MAX_RANK], n = idx->size;
  zshape[0] = a->shape[ax];
  gshape[0] = n;
  for (int d = 0, j = 1; d < r; d++)
    if (d != ax) zshape[j] = gshape[j] = a->shape[d], j++;
  for (int d = 0; d < q; d++) perm[k++] = ax + d;
  for (int d = 0; d < ax; d++) perm[k++] = d;
  for (int d = ax + q; d < node->ndim; d++) perm[k++] = d;
  mx_array *zero = NULL;
  if (!b->st) zero = keep(b, mx_full((mx_dtype)a->dtype, r, zshape, 0, &zero), &zero);
  int64_t col[2] = {n, 1};
  mx_array *rows = reshape(b, transpose(b, g, perm), r, gshape);
  mx_array *scattered = indexed_add(b, zero, reshape(b, in[1], 2, col), rows);
  int back[MX_MAX_RANK];
  for (int d = 0; d < r; d++) back[d] = d < ax ? d + 1 : d == ax ? 0 : d;
  gin[0] = out(b, transpose(b, scattered, back));
  END;
}
/* Full coordinates of every element of g (iota on the other axes), then a scatter-add. */
RULE(TAKE_ALONG_AXIS) {
  BEGIN;
  const mx_array *a = in[0], *idx = in[1];
  int ax = node->params->axis, r = a->ndim;
  mx_array *coords[MX_MAX_RANK] = {0};
  for (int d = 0; d < r; d++) {
    if (d == ax) {
      coords[d] = in[1];
    } else {
      mx_array *o = NULL;
      coords[d] = b->st ? NULL : keep(b, mx_iota(MX_S64, idx->ndim, idx->shape, d, &o), &o);
    }
  }
  mx_array *stacked = NULL;
  if (!b->st) stacked = keep(b, mx_stack(coords, r, -1, &stacked), &stacked);
  int64_t ishape[2] = {idx->size, r}, gshape[1] = {idx->size};
  gin[0] = out(b, indexed_add(b, zeros_like(b, a), reshape(b, stacked, 2, ishape), reshape(b, g, 1, gshape)));
  END;
}
RULE(GATHER) {
  BEGIN;
  const mx_array *a = in[0], *idx = in[1];
  int k = (int)idx->shape[idx->ndim - 1];
  int64_t n = k > 0 ? idx->size / k : 0;
  int64_t ishape[2] = {n, k}, gshape[MX_MAX_RANK];
  gshape[0] = n;
  for (int d = k; d < a->ndim; d++) gshape[1 + d - k] = a->shape[d];
  gin[0] = out(b, indexed_add(b, zeros_like(b, a), reshape(b, in[1], 2, ishape), reshape(b, g, 1 + a->ndim - k, gshape)));
  END;
}
RULE(INDEXED_ADD) {
  BEGIN;
  gin[0] = out(b, g);
  gin[2] = out(b, gather(b, g, in[1]));
  END;
}
/* Overwritten positions get no gradient from a; with repeated indices the last update wins. */
RULE(INDEXED_PUT) {
  BEGIN;
  mx_array *o = NULL, *z = zeros_like(b, in[2]);
  if (!b->st && z) gin[0] = out(b, keep(b, mx_indexed_put(g, in[1], z, &o), &o));
  gin[2] = out(b, gather(b, g, in[1]));
  END;
}
/* The inverse permutation of the sort sends each cotangent back to its element. */
RULE(SORT) {
  BEGIN;
  int ax = node->params->axis, desc = !!(node->params->flags & MX_F_DESC);
  mx_array *perm = NULL, *inv = NULL, *o = NULL;
  if (!b->st) perm = keep(b, mx_argsort(in[0], ax, desc, &perm), &perm);
  if (!b->st) inv = keep(b, mx_argsort(perm, ax, 0, &inv), &inv);
  if (!b->st) gin[0] = out(b, keep(b, mx_take_along_axis(g, inv, ax, &o), &o));
  END;
}

static mx_array *swap_last(bld *b, mx_array *x) {
  if (b->st || !x) return NULL;
  int perm[MX_MAX_RANK];
  for (int d = 0; d < x->ndim; d++) perm[d] = d;
  perm[x->ndim - 2] = x->ndim - 1;
  perm[x->ndim - 1] = x->ndim - 2;
  return transpose(b, x, perm);
}
static mx_array *matmul(bld *b, mx_array *x, mx_array *y) {
  mx_array *o = NULL;
  if (b->st || !x || !y) return NULL;
  return keep(b, mx_matmul(x, y, &o), &o);
}
/* C = op(A) op(B): dop(A) = G op(B)^T and dop(B) = op(A)^T G, transposed back for a stored
 * transpose (dA = op(B) G^T, dB = G^T op(A)); the swaps below become matmul flags, not copies. */
RULE(MATMUL) {
  BEGIN;
  int flags = node->params ? node->params->flags : 0;
  int ta = !!(flags & MX_MATMUL_TRANS_A), tb = !!(flags & MX_MATMUL_TRANS_B);
  mx_array *ga = ta ? matmul(b, tb ? swap_last(b, in[1]) : in[1], swap_last(b, g))
                    : matmul(b, g, tb ? in[1] : swap_last(b, in[1]));
  mx_array *gb = tb ? matmul(b, swap_last(b, g), ta ? swap_last(b, in[0]) : in[0])
                    : matmul(b, ta ? in[0] : swap_last(b, in[0]), g);
  gin[0] = out(b, unbroadcast(b, ga, in[0]));
  gin[1] = out(b, unbroadcast(b, gb, in[1]));
  END;
}

/* ---- linear algebra ----------------------------------------------------------------- */

/* Masks over the last two axes of like: 1 where row > col (strict lower), row == col. */
static mx_array *rowcol(bld *b, const mx_array *like, mx_op cmp) {
  if (b->st) return NULL;
  int64_t shape[2] = {like->shape[like->ndim - 2], like->shape[like->ndim - 1]};
  mx_array *r = NULL, *c = NULL;
  r = keep(b, mx_iota(MX_S64, 2, shape, 0, &r), &r);
  if (!b->st) c = keep(b, mx_iota(MX_S64, 2, shape, 1, &c), &c);
  return bin(b, cmp, r, c);
}

/* A kernel that reads only the lower triangle of a symmetric matrix: a gradient S with
 * respect to the full symmetric matrix lands on the entries read, A_ij (i > j) standing
 * for both S_ij and S_ji. */
static mx_array *lower_of_symmetric(bld *b, mx_array *s) {
  mx_array *st = swap_last(b, s), *zero = scalar(b, 0, s);
  mx_array *below = rowcol(b, s, MX_OP_GREATER), *diag = rowcol(b, s, MX_OP_EQUAL);
  return select3(b, below, ADD(s, st), select3(b, diag, s, zero));
}

static mx_array *tri_solve(bld *b, mx_array *a, mx_array *x, int lower, int left, int transpose) {
  mx_array *o = NULL;
  if (b->st || !a || !x) return NULL;
  return keep(b, mx_triangular_solve(a, x, lower, left, transpose, 0, &o), &o);
}

/* L = chol(A): S = L^-T Phi(L^T G) L^-1 with Phi the lower triangle, diagonal halved. */
RULE(CHOLESKY) {
  BEGIN;
  mx_array *phi_mask = select3(b, rowcol(b, node, MX_OP_GREATER), scalar(b, 1, node),
                               select3(b, rowcol(b, node, MX_OP_EQUAL), scalar(b, 0.5, node), scalar(b, 0, node)));
  mx_array *phi = MUL(matmul(b, swap_last(b, node), g), phi_mask);
  mx_array *y = tri_solve(b, node, phi, 1, 1, 1); /* L^T Y = Phi */
  mx_array *s = tri_solve(b, node, y, 1, 0, 0);   /* S L = Y */
  gin[0] = out(b, lower_of_symmetric(b, s));
  END;
}

/* op(A) X = B (left) or X op(A) = B: B's cotangent solves with op(A)^T; A's is -Bbar X^T
 * (or -X^T Bbar), transposed back if op transposes, on the triangle the kernel reads. */
RULE(TRIANGULAR_SOLVE) {
  BEGIN;
  int f = node->params->flags, lower = f & 1, left = !!(f & 2), trans = !!(f & 4), unit = !!(f & 8);
  mx_array *o = NULL, *bbar = NULL;
  if (!b->st) bbar = keep(b, mx_triangular_solve(in[0], g, lower, left, !trans, unit, &o), &o);
  mx_array *gop = un(b, MX_OP_NEGATE, left ? matmul(b, bbar, swap_last(b, node)) : matmul(b, swap_last(b, node), bbar));
  mx_array *ga = trans ? swap_last(b, gop) : gop;
  mx_array *keep_mask = rowcol(b, in[0], lower ? MX_OP_GREATER : MX_OP_LESS);
  if (!unit) keep_mask = bin(b, MX_OP_LOGICAL_OR, keep_mask, rowcol(b, in[0], MX_OP_EQUAL));
  gin[0] = out(b, unbroadcast(b, select3(b, keep_mask, ga, scalar(b, 0, node)), in[0]));
  gin[1] = out(b, unbroadcast(b, bbar, in[1]));
  END;
}

/* op(A) X = B: Bbar = op(A)^-T Xbar (the same solve with the transpose flag flipped), Abar = -Bbar X^T. */
RULE(SOLVE) {
  BEGIN;
  mx_params p = *node->params;
  p.flags ^= 1;
  mx_array *pair[2] = {in[0], g}, *bbar = NULL;
  if (!b->st) bbar = keep(b, mx_node_new(MX_OP_SOLVE, (mx_dtype)node->dtype, g->ndim, g->shape, 2, pair, &p, &bbar), &bbar);
  if (bbar) bbar->cost = node->cost;
  mx_array *gop = un(b, MX_OP_NEGATE, matmul(b, bbar, swap_last(b, node)));
  gin[0] = out(b, unbroadcast(b, (node->params->flags & 1) ? swap_last(b, gop) : gop, in[0]));
  gin[1] = out(b, unbroadcast(b, bbar, in[1]));
  END;
}

/* A = V diag(w) V^T: S = V (diag(wbar) + F o (V^T Vbar)) V^T, F_ij = 1 / (w_j - w_i) off the
 * diagonal (repeated eigenvalues make it infinite: their eigenvectors are not unique). */
RULE(EIGH) {
  BEGIN;
  const mx_array *a = in[0];
  int r = a->ndim;
  int64_t n = a->shape[r - 1];
  int values_only = node->params->flags & 1;
  mx_array *full = node;
  if (values_only && !b->st) { /* the vectors are needed: factor again with them */
    mx_params p = *node->params;
    p.flags &= ~1;
    int64_t shape[MX_MAX_RANK];
    memcpy(shape, node->shape, sizeof shape);
    shape[node->ndim - 1] = n + n * n;
    full = keep(b, mx_node_new(MX_OP_EIGH, (mx_dtype)node->dtype, node->ndim, shape, 1, in, &p, &full), &full);
    if (full) full->cost = node->cost;
  }
  /* Unpack [..., n + n*n] into w [..., n] and V [..., n, n], and the cotangent likewise. */
  int64_t start[MX_MAX_RANK] = {0}, stop[MX_MAX_RANK], stride[MX_MAX_RANK], vshape[MX_MAX_RANK];
  int pr = node->ndim;
  for (int d = 0; d < pr; d++) stop[d] = full ? full->shape[d] : 0, stride[d] = 1;
  for (int d = 0; d < pr - 1; d++) vshape[d] = node->shape[d];
  vshape[pr - 1] = n;
  vshape[pr] = n;
  stop[pr - 1] = n;
  mx_array *w = slice(b, full, start, stop, stride), *gw = values_only ? g : slice(b, g, start, stop, stride);
  start[pr - 1] = n;
  stop[pr - 1] = n + n * n;
  mx_array *v = reshape(b, slice(b, full, start, stop, stride), pr + 1, vshape);
  mx_array *gv = values_only ? NULL : reshape(b, slice(b, g, start, stop, stride), pr + 1, vshape);
  /* F_ij = 1 / (w_j - w_i), 0 on the diagonal */
  mx_array *wi = NULL, *wj = NULL;
  if (!b->st) wi = keep(b, mx_new_axis(w, -1, &wi), &wi);
  if (!b->st) wj = keep(b, mx_new_axis(w, -2, &wj), &wj);
  mx_array *diag = rowcol(b, v, MX_OP_EQUAL), *zero = scalar(b, 0, node);
  mx_array *f = select3(b, diag, zero, un(b, MX_OP_RECIPROCAL, select3(b, diag, scalar(b, 1, node), SUB(wj, wi))));
  mx_array *gwi = NULL;
  if (!b->st) gwi = keep(b, mx_new_axis(gw, -1, &gwi), &gwi);
  mx_array *inner = select3(b, diag, gwi, zero); /* diag(wbar) */
  if (gv) inner = ADD(inner, MUL(f, matmul(b, swap_last(b, v), gv)));
  mx_array *s = matmul(b, matmul(b, v, inner), swap_last(b, v));
  gin[0] = out(b, lower_of_symmetric(b, s));
  END;
}

/* ---- complex and fft -------------------------------------------------------------
 * JAX's convention: a cotangent c of a complex value w pairs with a change dw as
 * Re(c dw) (no conjugate), so holomorphic rules (add .. divide, exp, log, sqrt) are the
 * real ones, and grad of a real f(z) is df/dx - i df/dy (conjugate it to ascend). */

static mx_array *cpack(bld *b, mx_array *re, mx_array *im) { return bin(b, MX_OP_COMPLEX, re, im); }

/* w = Re z: Re(c dz) with c = g + 0i. */
RULE(REAL) { BEGIN; gin[0] = out(b, cpack(b, g, scalar(b, 0, g))); END; }
/* w = Im z: g dy = Re(-i g dz). */
RULE(IMAG) { BEGIN; gin[0] = out(b, cpack(b, scalar(b, 0, g), un(b, MX_OP_NEGATE, g))); END; }
/* Re(c conj(dz)) = Re(conj(c) dz). */
RULE(CONJUGATE) { BEGIN; gin[0] = out(b, un(b, MX_OP_CONJUGATE, g)); END; }
/* d atan2(y, x) = (x dy - y dx)/|z|^2 = Re(-i dz / z); constant (no gradient) for real input. */
RULE(ANGLE) {
  BEGIN;
  if (mx_is_complex((mx_dtype)in[0]->dtype))
    gin[0] = out(b, DIV(cpack(b, scalar(b, 0, g), un(b, MX_OP_NEGATE, g)), in[0]));
  END;
}
/* w = x + i y: Re(c dw) = Re(c) dx - Im(c) dy. */
RULE(COMPLEX) {
  BEGIN;
  gin[0] = out(b, unbroadcast(b, un(b, MX_OP_REAL, g), in[0]));
  gin[1] = out(b, unbroadcast(b, un(b, MX_OP_NEGATE, un(b, MX_OP_IMAG, g)), in[1]));
  END;
}

static mx_array *fft_node(bld *b, mx_op op, mx_array *x, const mx_array *node, int inverse) {
  mx_array *o = NULL;
  if (b->st || !x) return NULL;
  const mx_params *p = node->params;
  return keep(b, mx_fft_node(op, x, p->axis, p->ip[0], inverse, p->f[0], &o), &o);
}

/* The DFT matrix is symmetric, so under the bilinear pairing the transpose of a
 * scaled transform is the same transform. */
RULE(FFT) { BEGIN; gin[0] = out(b, fft_node(b, MX_OP_FFT, g, node, node->params->flags & 1)); END; }
/* y_k = s sum_t x_t w^tk (k <= n/2): x_t's cotangent is Re sum_k c_k s w^tk, a full
 * forward transform of c zero-padded to n, real part. */
RULE(RFFT) {
  BEGIN;
  int ax = node->params->axis;
  int64_t n = node->params->ip[0], lo[MX_MAX_RANK] = {0}, hi[MX_MAX_RANK] = {0};
  hi[ax] = n - node->shape[ax];
  mx_array *padded = hi[ax] ? pad(b, g, lo, hi, NULL) : g;
  gin[0] = out(b, un(b, MX_OP_REAL, fft_node(b, MX_OP_FFT, padded, node, 0)));
  END;
}
/* x_t = s sum_k w_k Re(y_k e^(2 pi i t k / n)) with w_k = 2 but w_0 = 1 (and w_(n/2) = 1 for
 * even n): y_k's cotangent is s w_k conj(rfft(g))_k. (The imaginary parts of bins 0 and
 * n/2 are ignored by irfft and get no gradient: those cotangents are real.) */
RULE(IRFFT) {
  BEGIN;
  int ax = node->params->axis, r = node->ndim;
  int64_t n = node->params->ip[0], m = n / 2 + 1, wshape[MX_MAX_RANK];
  for (int d = 0; d < r - ax; d++) wshape[d] = d == 0 ? m : 1; /* along axis, broadcast after it */
  double *wv = malloc(sizeof(double) * (size_t)m);
  mx_array *w = NULL;
  if (!wv) {
    b->st = mx_error(MX_ENOMEM, "[irfft] out of memory for the gradient's %lld weights", (long long)m);
  } else {
    for (int64_t k = 0; k < m; k++) wv[k] = k == 0 || (n % 2 == 0 && k == n / 2) ? 1 : 2;
    if (!b->st) w = keep(b, mx_from_data(MX_F64, r - ax, wshape, wv, sizeof(double) * (size_t)m, &w), &w);
    free(wv);
  }
  w = cast(b, w, (mx_dtype)node->dtype); /* the parts' dtype: f32 or f64 */
  gin[0] = out(b, MUL(un(b, MX_OP_CONJUGATE, fft_node(b, MX_OP_RFFT, g, node, 0)), w));
  END;
}

/* P A = L U, packed [..., n*n + n] (the L\U factors, then pivots). With Lbar, Ubar the parts of
 * the factors' cotangent: Xbar = tril(L^T Lbar, -1) + triu(Ubar U^T), Abar = P^T L^-T Xbar U^-T.
 * The pivots are piecewise constant: no gradient. */
RULE(LU) {
  BEGIN;
  const mx_array *a = in[0];
  if (mx_is_complex((mx_dtype)a->dtype) && !b->st)
    b->st = mx_error(MX_EINVAL, "[lu] has no gradient for complex matrices yet; differentiate through real inputs");
  int r = a->ndim, pr = node->ndim;
  int64_t n = a->shape[r - 1];
  int64_t start[MX_MAX_RANK] = {0}, stop[MX_MAX_RANK], stride[MX_MAX_RANK];
  for (int d = 0; d < pr; d++) stop[d] = node->shape[d], stride[d] = 1;
  stop[pr - 1] = n * n;
  mx_array *f = reshape(b, slice(b, node, start, stop, stride), r, a->shape);
  mx_array *gf = reshape(b, slice(b, g, start, stop, stride), r, a->shape);
  start[pr - 1] = n * n;
  stop[pr - 1] = n * n + n;
  mx_array *piv = slice(b, node, start, stop, stride);
  mx_array *zero = scalar(b, 0, node), *one = scalar(b, 1, node);
  mx_array *below = rowcol(b, a, MX_OP_GREATER), *above_or_diag = rowcol(b, a, MX_OP_LESS_EQUAL);
  mx_array *l = select3(b, below, f, select3(b, rowcol(b, a, MX_OP_EQUAL), one, zero));
  mx_array *u = select3(b, above_or_diag, f, zero);
  mx_array *gl = select3(b, below, gf, zero), *gu = select3(b, above_or_diag, gf, zero);
  mx_array *xbar = ADD(select3(b, below, matmul(b, swap_last(b, l), gl), zero),
                       select3(b, above_or_diag, matmul(b, gu, swap_last(b, u)), zero));
  mx_array *o = NULL, *y = NULL, *m = NULL;
  if (!b->st && xbar) y = keep(b, mx_triangular_solve(l, xbar, 1, 1, 1, 1, &y), &y); /* L^T Y = Xbar */
  if (!b->st && y) m = keep(b, mx_triangular_solve(u, y, 0, 0, 1, 0, &m), &m);        /* M U^T = Y */
  /* P^T M: row perm[i] of the result is row i of M, i.e. result = M[argsort(perm)]. */
  mx_array *perm = NULL, *inv = NULL, *rows = NULL;
  if (!b->st && piv) perm = keep(b, mx_node_new(MX_OP_LU_PERMUTATION, MX_S64, piv->ndim, piv->shape, 1, &piv, NULL, &perm), &perm);
  if (!b->st && perm) inv = keep(b, mx_argsort(perm, -1, 0, &inv), &inv);
  if (!b->st && inv) rows = keep(b, mx_new_axis(inv, -1, &rows), &rows);
  mx_array *idx = NULL;
  if (!b->st && rows && m) idx = keep(b, mx_broadcast_to(rows, m->ndim, m->shape, &idx), &idx);
  if (!b->st && idx) gin[0] = out(b, keep(b, mx_take_along_axis(m, idx, -2, &o), &o));
  END;
}

/* ---- the driver -------------------------------------------------------------------- */

mx_status mx_trace_input(mx_array *a, mx_array **out_) {
  mx_status st = mx_reshape(a, a->ndim, a->shape, out_);
  if (!st) (*out_)->traced = 1;
  return st;
}

mx_status mx_stop_gradient(mx_array *a, mx_array **out_) {
  mx_status st = mx_node_new(MX_OP_STOP_GRADIENT, (mx_dtype)a->dtype, a->ndim, a->shape, 1, &a, NULL, out_);
  if (!st) (*out_)->cost = 0;
  return st;
}

typedef struct {
  mx_array *node;
  mx_array **in; /* retained copies: the graph may change under us */
  int n_in;
  int depends;   /* reaches a wrt node */
  mx_array *cot;
} entry;

typedef struct {
  entry *v;      /* in discovery order */
  size_t n, cap;
  size_t *post;  /* entry indices in post-order: inputs before consumers */
  size_t npost;
  size_t *slots; /* open addressing: index + 1, 0 = empty */
  size_t nslots;
} tape;

static size_t hash_ptr(const void *p, size_t nslots) { return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull & (nslots - 1); }

static int64_t find(const tape *t, const mx_array *a) {
  if (!t->nslots) return -1;
  for (size_t h = hash_ptr(a, t->nslots);; h = (h + 1) & (t->nslots - 1)) {
    if (!t->slots[h]) return -1;
    if (t->v[t->slots[h] - 1].node == a) return (int64_t)t->slots[h] - 1;
  }
}

static int rehash(tape *t, size_t nslots) {
  size_t *slots = calloc(nslots, sizeof *slots);
  if (!slots) return 0;
  for (size_t i = 0; i < t->n; i++) {
    size_t h = hash_ptr(t->v[i].node, nslots);
    while (slots[h]) h = (h + 1) & (nslots - 1);
    slots[h] = i + 1;
  }
  free(t->slots);
  t->slots = slots;
  t->nslots = nslots;
  return 1;
}

static int64_t add_entry(tape *t, mx_array *a) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 64;
    entry *v = realloc(t->v, cap * sizeof *v);
    if (v) t->v = v;
    size_t *post = realloc(t->post, cap * sizeof *post);
    if (post) t->post = post;
    if (!v || !post) return -1;
    t->cap = cap;
  }
  if (2 * (t->n + 1) > t->nslots && !rehash(t, t->nslots ? 2 * t->nslots : 128)) return -1;
  entry *e = &t->v[t->n];
  memset(e, 0, sizeof *e);
  mx_retain(a);
  e->node = a;
  size_t h = hash_ptr(a, t->nslots);
  while (t->slots[h]) h = (h + 1) & (t->nslots - 1);
  t->slots[h] = ++t->n;
  return (int64_t)t->n - 1;
}

static void tape_free(tape *t) {
  for (size_t i = 0; i < t->n; i++) {
    for (int j = 0; j < t->v[i].n_in; j++) mx_release(t->v[i].in[j]);
    free(t->v[i].in);
    mx_release(t->v[i].node);
    mx_release(t->v[i].cot);
  }
  free(t->v);
  free(t->slots);
  free(t->post);
}

static int is_wrt(mx_array *a, mx_array *const *wrt, int n) {
  for (int i = 0; i < n; i++)
    if (wrt[i] == a) return 1;
  return 0;
}

/* Post-order over traced nodes from the outputs; wrt nodes are leaves. */
static mx_status record(tape *t, mx_array *const *outs, int n_out, mx_array *const *wrt, int n_wrt) {
  int64_t *stack = NULL, *next = NULL;
  size_t sn = 0, scap = 0;
  mx_status st = MX_OK;
  for (int r = 0; r < n_out && !st; r++) {
    if (find(t, outs[r]) >= 0) continue;
    int64_t root = add_entry(t, outs[r]);
    if (root < 0) return mx_error(MX_ENOMEM, "[vjp] out of memory");
    /* stack of entry indices with the next input to visit */
#define PUSH(i)                                                                   \
  do {                                                                            \
    if (sn == scap) {                                                             \
      scap = scap ? 2 * scap : 64;                                                \
      int64_t *s2 = realloc(stack, scap * sizeof *s2), *n2 = realloc(next, scap * sizeof *n2); \
      if (s2) stack = s2;                                                         \
      if (n2) next = n2;                                                          \
      if (!s2 || !n2) { st = mx_error(MX_ENOMEM, "[vjp] out of memory"); break; } \
    }                                                                             \
    stack[sn] = (i);                                                              \
    next[sn++] = 0;                                                               \
  } while (0)
    PUSH(root);
    while (sn > 0 && !st) {
      entry *e = &t->v[stack[sn - 1]];
      mx_array *x = e->node;
      int leaf = is_wrt(x, wrt, n_wrt) || !x->traced;
      if (next[sn - 1] == 0 && !leaf && !e->in) {
        /* First visit: copy the inputs (a dispose could detach them later). */
        mx_graph_lock();
        e->n_in = x->n_in;
        e->in = e->n_in ? malloc(sizeof(mx_array *) * (size_t)e->n_in) : NULL;
        if (e->n_in && !e->in) e->n_in = 0;
        for (int i = 0; i < e->n_in; i++) {
          e->in[i] = x->in[i];
          mx_retain(e->in[i]);
        }
        mx_graph_unlock();
      }
      if (!leaf && next[sn - 1] < e->n_in) {
        mx_array *p = e->in[next[sn - 1]++];
        if (find(t, p) < 0) {
          int64_t j = add_entry(t, p);
          if (j < 0) {
            st = mx_error(MX_ENOMEM, "[vjp] out of memory");
            break;
          }
          PUSH(j);
        }
        continue;
      }
      /* All inputs done: this node depends on wrt if it is one or an input does. */
      e = &t->v[stack[sn - 1]];
      e->depends = is_wrt(x, wrt, n_wrt);
      for (int i = 0; i < e->n_in && !e->depends; i++) e->depends = t->v[find(t, e->in[i])].depends;
      t->post[t->npost++] = (size_t)stack[--sn];
    }
#undef PUSH
  }
  free(stack);
  free(next);
  return st;
}

static mx_status accumulate(entry *e, mx_array *c) {
  if (!e->cot) {
    e->cot = c;
    return MX_OK;
  }
  mx_array *s;
  mx_status st = mx_binary(MX_OP_ADD, e->cot, c, &s);
  mx_release(c);
  if (st) return st;
  mx_release(e->cot);
  e->cot = s;
  return MX_OK;
}

mx_status mx_vjp(mx_array *const *outs, mx_array *const *cots, int n_out, mx_array *const *wrt, int n_wrt,
                 mx_array **grads) {
  char b1[128], b2[128];
  for (int i = 0; i < n_out; i++)
    if (cots[i]->ndim != outs[i]->ndim || memcmp(cots[i]->shape, outs[i]->shape, sizeof(int64_t) * (size_t)outs[i]->ndim))
      return mx_error(MX_EINVAL, "[vjp] cotangent %d is %s but its output is %s; they must have the same shape", i,
                      mx_describe(cots[i], b1, sizeof b1), mx_describe(outs[i], b2, sizeof b2));
  tape t = {0};
  mx_status st = record(&t, outs, n_out, wrt, n_wrt);
  for (int i = 0; i < n_out && !st; i++) {
    entry *e = &t.v[find(&t, outs[i])];
    if (!e->depends || !(mx_is_float((mx_dtype)outs[i]->dtype) || mx_is_complex((mx_dtype)outs[i]->dtype))) continue;
    mx_array *c;
    st = mx_cast(cots[i], (mx_dtype)outs[i]->dtype, &c);
    if (!st) st = accumulate(e, c);
  }
  /* Reverse post-order: every consumer is done before its inputs. */
  for (size_t k = t.npost; k-- > 0 && !st;) {
    entry *e = &t.v[t.post[k]];
    if (!e->cot || !e->depends || is_wrt(e->node, wrt, n_wrt)) continue;
    mx_array *x = e->node;
    const mx_op_info *info = &mx_ops[x->op];
    if (info->grad == 'N') {
      st = mx_error(MX_EINVAL, "[%s] has no gradient yet; wrap its input in Mx.stop_gradient/1 if it needs none", info->name);
      break;
    }
    if (info->grad == 'D') {
      mx_array *local[8] = {0}, **gin = e->n_in <= 8 ? local : calloc((size_t)e->n_in, sizeof *gin);
      if (!gin) {
        st = mx_error(MX_ENOMEM, "[vjp] out of memory");
        break;
      }
      vjp_needs = 0;
      for (int i = 0; i < e->n_in && i < 32; i++)
        if (t.v[find(&t, e->in[i])].depends) vjp_needs |= 1u << i;
      st = info->vjp(x, e->in, e->cot, gin);
      for (int i = 0; i < e->n_in; i++) {
        if (!gin[i]) continue;
        entry *p = &t.v[find(&t, e->in[i])];
        mx_dtype pt = (mx_dtype)p->node->dtype;
        if (!st && p->depends && (mx_is_float(pt) || mx_is_complex(pt))) st = accumulate(p, gin[i]);
        else mx_release(gin[i]);
      }
      if (gin != local) free(gin);
    }
    mx_release(e->cot); /* done with it: frees memory as the walk goes */
    e->cot = NULL;
  }
  int made = 0;
  for (; made < n_wrt && !st; made++) {
    int64_t i = find(&t, wrt[made]);
    if (i >= 0 && t.v[i].cot) {
      grads[made] = t.v[i].cot;
      mx_retain(grads[made]);
    } else {
      st = mx_full((mx_dtype)wrt[made]->dtype, wrt[made]->ndim, wrt[made]->shape, 0, &grads[made]);
      if (st) break;
    }
  }
  if (st)
    for (int i = 0; i < made; i++) mx_release(grads[i]);
  tape_free(&t);
  return st;
}

/* ---- convolution and window reductions (ops_conv.c) ------------------------------------ */
#include "ops_conv.h"

/* conv is bilinear in (x, w), and so are its two gradients: x's cotangent is conv_input_grad(g, w)
 * (gemm + col2im), w's is conv_kernel_grad(x, g) (im2col + gemm), each as cheap as the forward conv.
 * The three rules close over each other: <conv(x, w), g> = <x, input_grad(g, w)> = <w, kernel_grad(x, g)>. */
static mx_array *conv3(bld *b, mx_op op, mx_array *a1, mx_array *a2, const int64_t *shape, const mx_params *p) {
  mx_array *o = NULL;
  if (b->st || !a1 || !a2) return NULL;
  const int64_t *str = p->ip, *dil = str + (a1->ndim - 2);
  mx_status st = op == MX_OP_CONV                ? mx_conv_node(a1, a2, str, dil, p->axis, &o)
                 : op == MX_OP_CONV_INPUT_GRAD ? mx_conv_input_grad_node(a1, a2, shape, str, dil, p->axis, &o)
                                                 : mx_conv_kernel_grad_node(a1, a2, shape, str, dil, p->axis, &o);
  return keep(b, st, &o);
}

RULE(CONV) {
  BEGIN;
  mx_array *x = in[0], *w = in[1];
  if (vjp_needs & 1) gin[0] = out(b, conv3(b, MX_OP_CONV_INPUT_GRAD, g, w, x->shape, node->params));
  if (vjp_needs & 2) gin[1] = out(b, conv3(b, MX_OP_CONV_KERNEL_GRAD, x, g, w->shape, node->params));
  END;
}

/* node = input_grad(gy, w), h x-shaped: <node, h> = <conv(h, w), gy> = <w, kernel_grad(h, gy)>. */
RULE(CONV_INPUT_GRAD) {
  BEGIN;
  mx_array *gy = in[0], *w = in[1];
  if (vjp_needs & 1) gin[0] = out(b, conv3(b, MX_OP_CONV, g, w, NULL, node->params));
  if (vjp_needs & 2) gin[1] = out(b, conv3(b, MX_OP_CONV_KERNEL_GRAD, g, gy, w->shape, node->params));
  END;
}

/* node = kernel_grad(x, gy), h w-shaped: <node, h> = <conv(x, h), gy> = <x, input_grad(gy, h)>. */
RULE(CONV_KERNEL_GRAD) {
  BEGIN;
  mx_array *x = in[0], *gy = in[1];
  if (vjp_needs & 1) gin[0] = out(b, conv3(b, MX_OP_CONV_INPUT_GRAD, gy, g, x->shape, node->params));
  if (vjp_needs & 2) gin[1] = out(b, conv3(b, MX_OP_CONV, x, g, NULL, node->params));
  END;
}

/* Each element's cotangent sums g over the windows holding it: g dilated by the strides,
 * padded by the window's span, summed over the same (dilated) windows. */
RULE(WINDOW_SUM) {
  BEGIN;
  mx_array *x = in[0];
  int R = x->ndim;
  const int64_t *win = node->params->ip, *str = win + R, *dil = win + 2 * R;
  int64_t lo[MX_MAX_RANK], hi[MX_MAX_RANK], interior[MX_MAX_RANK], ones[MX_MAX_RANK];
  int empty = 0;
  for (int d = 0; d < R; d++) {
    int64_t span = (win[d] - 1) * dil[d], used = (node->shape[d] - 1) * str[d] + span + 1;
    empty |= node->shape[d] == 0;
    lo[d] = span;
    hi[d] = span + x->shape[d] - used;
    interior[d] = str[d] - 1;
    ones[d] = 1;
  }
  if (empty) {
    gin[0] = out(b, zeros_like(b, x));
  } else {
    mx_array *gp = pad(b, g, lo, hi, interior), *gx = NULL;
    if (!b->st && gp) gx = keep(b, mx_window_node(MX_OP_WINDOW_SUM, gp, win, ones, dil, &gx), &gx);
    gin[0] = out(b, gx);
  }
  END;
}

/* The cotangent goes to each window's selected element (window_scatter, as Nx). */
static mx_status window_extreme_vjp(mx_op scatter, mx_array *node, mx_array *const *in, mx_array *g, mx_array **gin) {
  BEGIN;
  int R = in[0]->ndim;
  const int64_t *p = node->params->ip;
  mx_array *gx = NULL;
  if (!b->st) gx = keep(b, mx_window_scatter_node(scatter, in[0], g, p, p + R, p + 2 * R, 0, &gx), &gx);
  gin[0] = out(b, gx);
  END;
}
RULE(WINDOW_MAX) { return window_extreme_vjp(MX_OP_WINDOW_SCATTER_MAX, node, in, g, gin); }
RULE(WINDOW_MIN) { return window_extreme_vjp(MX_OP_WINDOW_SCATTER_MIN, node, in, g, gin); }

/* Linear in the values (in[1]); the scatter and its transpose (a gather at the same selected
 * positions) are each other's transposes. The selection itself is piecewise constant: x gets none. */
static mx_status window_scatter_vjp(mx_array *node, mx_array *const *in, mx_array *g, mx_array **gin) {
  BEGIN;
  int R = in[0]->ndim;
  const int64_t *p = node->params->ip;
  mx_array *gv = NULL;
  if (!b->st && (vjp_needs & 2))
    gv = keep(b, mx_window_scatter_node((mx_op)node->op, in[0], g, p, p + R, p + 2 * R, !(node->params->flags & 1), &gv), &gv);
  gin[1] = out(b, gv);
  END;
}
RULE(WINDOW_SCATTER_MAX) { return window_scatter_vjp(node, in, g, gin); }
RULE(WINDOW_SCATTER_MIN) { return window_scatter_vjp(node, in, g, gin); }

/* ---- quantization (ops_quant.c) ---------------------------------------------------------- */
#include "ops_quant.h"

/* x's cotangent is g against the same quantized w with the transpose flipped; the packed
 * weights, scales and biases have none (raises: differentiating them is not supported). */
RULE(QUANTIZED_MATMUL) {
  if (vjp_needs & ~1u)
    return mx_error(MX_EINVAL,
                    "[quantized_matmul] has no gradient with respect to w_q, scales or biases, only x; wrap them in "
                    "Mx.stop_gradient/1, or differentiate Mx.matmul against Mx.dequantize's result");
  BEGIN;
  const mx_params *p = node->params;
  mx_array *gx = NULL;
  if (!b->st) gx = keep(b, mx_quantized_matmul_node(g, in[1], in[2], in[3], !(p->flags & 1), p->ip[0], p->ip[1], &gx), &gx);
  gin[0] = out(b, unbroadcast(b, gx, in[0])); /* batched weights may have broadcast x */
  END;
}

/* ---- fused scaled-dot-product attention (ops_sdpa.c) ------------------------------------ */
#include "ops_sdpa.h"

/* q, k and v from one backward kernel that recomputes the score tiles (prim/sdpa.c); the mask
 * (in[3]) has none: differentiating through it raises rather than silently giving zero. */
RULE(SDPA) {
  if (vjp_needs & 8)
    return mx_error(MX_EINVAL, "[scaled_dot_product_attention] has no gradient with respect to the mask, only q, k "
                               "and v; wrap the mask in Mx.stop_gradient/1, or compose the attention from Mx ops");
  BEGIN;
  mx_array *gq = NULL, *gk = NULL, *gv = NULL;
  mx_status st = mx_sdpa_vjp(node, in, g, &gq, &gk, &gv);
  if (st) b->st = st;
  gin[0] = gq, gin[1] = gk, gin[2] = gv;
  END;
}

/* Only with respect to the cotangent input (which makes jvp work); second derivatives in q, k, v
 * raise. */
RULE(SDPA_VJP) {
  if (vjp_needs & ~16u)
    return mx_error(MX_EINVAL, "[scaled_dot_product_attention_vjp] has no second derivatives with respect to q, k or "
                               "v (jvp and first-order gradients work); compose the attention from Mx ops for those");
  return mx_sdpa_vjp_vjp(node, in, g, &gin[4]);
}
