/* vmap.c: batching by replay. The function runs once on per-example
 * placeholders (traced, so the graph stays attached); mx_vmap then rebuilds
 * that graph on the batched inputs, node by node in post-order, with one
 * batching rule per primitive family. A batched value carries its batch
 * axis first. A primitive without a rule is replayed once per example and
 * stacked: correct, only slower. */
#include <stdlib.h>
#include <string.h>

#include "ops_internal.h"
#include "ops_conv.h"
#include "ops_quant.h"
#include "ops_sdpa.h"

/* x (batched at 0, per-example rank r) with unit axes after the batch axis so
 * that its per-example rank becomes `rank`: aligns it for broadcasting. */
static mx_status lift(mx_array *x, int r, int rank, mx_array **out) {
  if (r >= rank) {
    mx_retain(x);
    *out = x;
    return MX_OK;
  }
  int64_t shape[MX_MAX_RANK];
  if (rank + 1 > MX_MAX_RANK) return mx_error(MX_EINVAL, "[vmap] batched rank %d exceeds %d", rank + 1, MX_MAX_RANK);
  shape[0] = x->shape[0];
  for (int i = 1; i <= rank - r; i++) shape[i] = 1;
  for (int i = 1; i <= r; i++) shape[rank - r + i] = x->shape[i];
  return mx_reshape(x, rank + 1, shape, out);
}

/* Broadcasts an unbatched x to carry a batch axis of size B. */
static mx_status add_batch(mx_array *x, int64_t B, mx_array **out) {
  int64_t shape[MX_MAX_RANK];
  if (x->ndim + 1 > MX_MAX_RANK) return mx_error(MX_EINVAL, "[vmap] batched rank %d exceeds %d", x->ndim + 1, MX_MAX_RANK);
  shape[0] = B;
  memcpy(shape + 1, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  mx_array *e;
  mx_status st = mx_new_axis(x, 0, &e);
  if (st) return st;
  st = mx_broadcast_to(e, x->ndim + 1, shape, out);
  mx_release(e);
  return st;
}

/* A copy of node over new inputs whose per-example shapes match the old ones. */
static mx_status clone(mx_array *node, mx_array *const *in, mx_array **out) {
  mx_status st = mx_node_new((mx_op)node->op, (mx_dtype)node->dtype, node->ndim, node->shape, node->n_in, in,
                             node->params, out);
  if (!st) (*out)->cost = node->cost;
  return st;
}

/* Fallback: run the node per example and stack the results along axis 0. */
static mx_status per_example(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out) {
  int n = node->n_in;
  if (B > MX_MAX_INPUTS) return mx_error(MX_EINVAL, "[vmap] [%s] has no batching rule and batch size %lld exceeds %d", mx_ops[node->op].name, (long long)B, MX_MAX_INPUTS);
  mx_array **results = calloc((size_t)(B ? B : 1), sizeof *results), **ex = calloc((size_t)(n ? n : 1), sizeof *ex);
  mx_status st = (!results || !ex) ? mx_error(MX_ENOMEM, "[vmap] out of memory") : MX_OK;
  for (int64_t b = 0; b < B && !st; b++) {
    for (int i = 0; i < n && !st; i++) {
      if (!batched[i]) {
        ex[i] = in[i];
        mx_retain(ex[i]);
        continue;
      }
      int64_t start[MX_MAX_RANK] = {0}, stop[MX_MAX_RANK], stride[MX_MAX_RANK];
      for (int d = 0; d < in[i]->ndim; d++) stop[d] = in[i]->shape[d], stride[d] = 1;
      start[0] = b;
      stop[0] = b + 1;
      mx_array *s;
      st = mx_slice(in[i], start, stop, stride, &s);
      if (!st) st = mx_reshape(s, in[i]->ndim - 1, in[i]->shape + 1, &ex[i]);
      if (!st) mx_release(s);
    }
    if (!st) st = clone(node, ex, &results[b]);
    for (int i = 0; i < n; i++) {
      mx_release(ex[i]);
      ex[i] = NULL;
    }
  }
  if (!st) {
    if (B == 0) {
      int64_t shape[MX_MAX_RANK];
      shape[0] = 0;
      memcpy(shape + 1, node->shape, sizeof(int64_t) * (size_t)node->ndim);
      st = mx_full((mx_dtype)node->dtype, node->ndim + 1, shape, 0, out);
    } else {
      st = mx_stack(results, (int)B, 0, out);
    }
  }
  for (int64_t b = 0; results && b < B; b++) mx_release(results[b]);
  free(results);
  free(ex);
  return st;
}

/* Per-family rules. Inputs that are batched carry the batch axis first. */
static mx_status batch_node(mx_array *node, mx_array *const *in, const int *batched, int64_t B, mx_array **out) {
  mx_op op = (mx_op)node->op;
  int handled = 0; /* convolution and window reductions: ops_conv.c */
  mx_status conv_st = mx_vmap_conv_window(node, in, batched, B, out, &handled);
  if (handled) return conv_st;
  mx_status quant_st = mx_vmap_quant(node, in, batched, B, out, &handled); /* ops_quant.c */
  if (handled) return quant_st;
  mx_status sdpa_st = mx_vmap_sdpa(node, in, batched, B, out, &handled); /* ops_sdpa.c */
  if (handled) return sdpa_st;
  const mx_op_info *info = &mx_ops[op];
  int n = node->n_in, r = node->ndim;
  mx_array *local[8] = {0}, **x = n <= 8 ? local : calloc((size_t)n, sizeof *x);
  if (!x) return mx_error(MX_ENOMEM, "[vmap] out of memory");
  mx_status st = MX_OK;
  mx_params p = node->params ? *node->params : (mx_params){0};
  int64_t shape[MX_MAX_RANK];
  int use_rule = 1;

  switch (info->family) {
  case MX_FAM_OTHER:
    if (op == MX_OP_FFT || op == MX_OP_RFFT || op == MX_OP_IRFFT) {
      /* One input, transformed along an axis: the batch axis shifts it by one. */
      p.axis += 1;
      shape[0] = B;
      memcpy(shape + 1, node->shape, sizeof(int64_t) * (size_t)r);
      st = mx_node_new(op, (mx_dtype)node->dtype, r + 1, shape, 1, in, &p, out);
      if (!st) (*out)->cost = node->cost * (B ? B : 1);
      break;
    }
    if (op != MX_OP_SELECT && op != MX_OP_BETAINC) {
      use_rule = 0;
      break;
    }
    __attribute__((fallthrough)); /* select and betainc are elementwise */
  case MX_FAM_UNARY:
  case MX_FAM_BINARY:
    /* Elementwise: align ranks after the batch axis, then the same op broadcasts. */
    for (int i = 0; i < n && !st; i++) {
      if (batched[i]) st = lift(in[i], in[i]->ndim - 1, r, &x[i]);
      else mx_retain(x[i] = in[i]);
    }
    if (!st) {
      shape[0] = B;
      memcpy(shape + 1, node->shape, sizeof(int64_t) * (size_t)r);
      st = mx_node_new(op, (mx_dtype)node->dtype, r + 1, shape, n, x, node->params, out);
    }
    break;
  case MX_FAM_REDUCE:
  case MX_FAM_SCAN:
  case MX_FAM_SORT:
  case MX_FAM_SHAPE:
    if (op == MX_OP_CONCATENATE) {
      for (int i = 0; i < n && !st; i++) {
        if (batched[i]) mx_retain(x[i] = in[i]);
        else st = add_batch(in[i], B, &x[i]);
      }
      p.axis += 1;
    } else {
      mx_retain(x[0] = in[0]);
      for (int i = 1; i < n; i++) mx_retain(x[i] = in[i]); /* pad value: unbatched scalars only */
      if (n > 1 && batched[1]) use_rule = 0;
      int rin = in[0]->ndim - 1;
      switch (op) {
      case MX_OP_RESHAPE:
      case MX_OP_STOP_GRADIENT:
        break;
      case MX_OP_TRANSPOSE:
        for (int i = r; i > 0; i--) p.ip[i] = p.ip[i - 1] + 1;
        p.ip[0] = 0;
        p.nip = r + 1;
        break;
      case MX_OP_BROADCAST: {
        mx_array *l;
        st = lift(in[0], rin, r, &l);
        if (!st) {
          mx_release(x[0]);
          x[0] = l;
        }
        break;
      }
      case MX_OP_SLICE:
        for (int i = 2 * rin + 1; i >= 0; i--) p.ip[i] = 0;
        for (int i = 0; i < rin; i++) {
          p.ip[i + 1] = node->params->ip[i];
          p.ip[rin + 1 + i + 1] = node->params->ip[rin + i];
        }
        p.ip[rin + 1] = 1; /* stride of the batch axis */
        p.nip = 2 * (rin + 1);
        break;
      case MX_OP_PAD:
        for (int k = 2; k >= 0; k--) {
          for (int i = rin - 1; i >= 0; i--) p.ip[k * (rin + 1) + 1 + i] = node->params->ip[k * rin + i];
          p.ip[k * (rin + 1)] = 0;
        }
        p.nip = 3 * (rin + 1);
        break;
      case MX_OP_REVERSE:
      case MX_OP_SUM:
      case MX_OP_PRODUCT:
      case MX_OP_REDUCE_MAX:
      case MX_OP_REDUCE_MIN:
      case MX_OP_ARGMAX:
      case MX_OP_ARGMIN:
      case MX_OP_ALL:
      case MX_OP_ANY:
        for (int i = 0; i < p.nip; i++) p.ip[i] += 1;
        break;
      case MX_OP_CUMULATIVE_SUM:
      case MX_OP_CUMULATIVE_PRODUCT:
      case MX_OP_CUMULATIVE_MAX:
      case MX_OP_CUMULATIVE_MIN:
      case MX_OP_SORT:
      case MX_OP_ARGSORT:
        p.axis += 1;
        break;
      default:
        use_rule = 0;
      }
    }
    if (!st && use_rule) {
      shape[0] = B;
      memcpy(shape + 1, node->shape, sizeof(int64_t) * (size_t)r);
      st = mx_node_new(op, (mx_dtype)node->dtype, r + 1, shape, n, x, node->params ? &p : NULL, out);
    }
    break;
  case MX_FAM_LINALG:
    if (op == MX_OP_MATMUL) {
      /* The primitive broadcasts batch axes: align ranks as for elementwise ops. */
      for (int i = 0; i < n && !st; i++) {
        if (batched[i]) st = lift(in[i], in[i]->ndim - 1, r, &x[i]);
        else mx_retain(x[i] = in[i]);
      }
      if (!st) {
        shape[0] = B;
        memcpy(shape + 1, node->shape, sizeof(int64_t) * (size_t)r);
        st = mx_node_new(op, (mx_dtype)node->dtype, r + 1, shape, n, x, node->params, out); /* trans flags */
        if (!st) (*out)->cost = node->cost * (B ? B : 1);
      }
    } else if (n == 1 && (op == MX_OP_CHOLESKY || op == MX_OP_LU || op == MX_OP_QR || op == MX_OP_SVD || op == MX_OP_EIGH ||
                          op == MX_OP_EIG)) {
      /* One-input factorizations already batch over leading axes. */
      shape[0] = B;
      memcpy(shape + 1, node->shape, sizeof(int64_t) * (size_t)r);
      st = mx_node_new(op, (mx_dtype)node->dtype, r + 1, shape, 1, in, node->params, out);
      if (!st) (*out)->cost = node->cost * (B ? B : 1);
    } else {
      use_rule = 0;
    }
    break;
  default:
    use_rule = 0;
  }
  for (int i = 0; i < n; i++) mx_release(x[i]);
  if (x != local) free(x);
  if (!st && !use_rule) st = per_example(node, in, batched, B, out);
  return st;
}

typedef struct {
  mx_array *node;
  mx_array *result; /* replayed value; batched iff `batched` */
  int batched;
} replayed;

static int64_t lookup(replayed *v, size_t n, mx_array *a) {
  for (size_t i = n; i-- > 0;)
    if (v[i].node == a) return (int64_t)i;
  return -1;
}

mx_status mx_vmap(mx_array *const *outs, int n_out, mx_array *const *holders, mx_array *const *inputs, int n_in,
                  int64_t B, mx_array **results, int *out_batched) {
  /* Post-order walk over traced nodes; placeholders map to the batched inputs. */
  size_t cap = 64 + (size_t)(n_in > 0 ? n_in : 0), n = 0, sn = 0, scap = 64; /* room for every placeholder */
  replayed *v = malloc(cap * sizeof *v);
  mx_array **stack = malloc(scap * sizeof *stack);
  mx_status st = (!v || !stack) ? mx_error(MX_ENOMEM, "[vmap] out of memory") : MX_OK;
  for (int i = 0; i < n_in && !st; i++) {
    v[n].node = holders[i];
    v[n].result = inputs[i];
    mx_retain(inputs[i]);
    v[n++].batched = 1;
  }
  for (int o = 0; o < n_out && !st; o++) {
    if (lookup(v, n, outs[o]) >= 0) continue;
    stack[sn++] = outs[o];
    while (sn > 0 && !st) {
      mx_array *x = stack[sn - 1];
      if (lookup(v, n, x) >= 0) {
        sn--;
        continue;
      }
      mx_graph_lock();
      int n_x = x->traced ? x->n_in : 0;
      mx_array *xin[8];
      mx_array **ins = n_x <= 8 ? xin : malloc(sizeof(mx_array *) * (size_t)n_x);
      if (ins)
        for (int i = 0; i < n_x; i++) mx_retain(ins[i] = x->in[i]);
      mx_graph_unlock();
      if (!ins) {
        st = mx_error(MX_ENOMEM, "[vmap] out of memory");
        break;
      }
      int pending = 0;
      for (int i = 0; i < n_x; i++) {
        if (lookup(v, n, ins[i]) >= 0) continue;
        if (sn == scap) {
          mx_array **s2 = realloc(stack, 2 * scap * sizeof *s2);
          if (!s2) {
            st = mx_error(MX_ENOMEM, "[vmap] out of memory");
            break;
          }
          stack = s2;
          scap *= 2;
        }
        stack[sn++] = ins[i];
        pending = 1;
      }
      if (!pending && !st) {
        /* All inputs replayed: rebuild x if any of them is batched. */
        int local_b[8], *b = n_x <= 8 ? local_b : malloc(sizeof(int) * (size_t)n_x), any = 0;
        mx_array *rlocal[8], **rin = n_x <= 8 ? rlocal : malloc(sizeof(mx_array *) * (size_t)n_x);
        if (!b || !rin) st = mx_error(MX_ENOMEM, "[vmap] out of memory");
        for (int i = 0; i < n_x && !st; i++) {
          replayed *e = &v[lookup(v, n, ins[i])];
          rin[i] = e->result;
          b[i] = e->batched;
          any |= b[i];
        }
        mx_array *res = NULL;
        if (!st && any) st = batch_node(x, rin, b, B, &res);
        else if (!st) mx_retain(res = x);
        if (!st) {
          if (n == cap) {
            replayed *v2 = realloc(v, 2 * cap * sizeof *v2);
            if (!v2) st = mx_error(MX_ENOMEM, "[vmap] out of memory");
            else v = v2, cap *= 2;
          }
          if (!st) {
            v[n].node = x;
            v[n].result = res;
            v[n++].batched = any;
          } else {
            mx_release(res);
          }
        }
        if (b != local_b) free(b);
        if (rin != rlocal) free(rin);
        sn--;
      }
      for (int i = 0; i < n_x; i++) mx_release(ins[i]);
      if (ins != xin) free(ins);
    }
  }
  int made = 0;
  for (; made < n_out && !st; made++) {
    replayed *e = &v[lookup(v, n, outs[made])];
    results[made] = e->result;
    mx_retain(results[made]);
    out_batched[made] = e->batched;
  }
  if (st)
    for (int i = 0; i < made; i++) mx_release(results[i]);
  for (size_t i = 0; v && i < n; i++) mx_release(v[i].result);
  free(v);
  free(stack);
  return st;
}
