defmodule Mx.OpCases do
  @moduledoc """
  One or more small f64 cases per differentiable primitive (vjp column D in
  c_src/ops.def), shared by the gradient checks and the vmap checks:
  `{primitive, [{description, f, inputs}]}`. Domains avoid kinks and poles.
  """
  import Mx.GradCheck, only: [random_f64: 2, random_f64: 4]

  # Inputs: r(shape, seed) in [-1, 1); pos(shape, seed) in [0.5, 2); all f64.
  defp r(shape, seed), do: random_f64(shape, seed)
  defp pos(shape, seed), do: random_f64(shape, seed, 0.5, 2.0)
  defp small(shape, seed), do: random_f64(shape, seed, -0.8, 0.8)
  defp idx(list), do: Mx.tensor(list, type: :s64)
  # Symmetric positive definite with well separated eigenvalues: M M^T + diag(1, 2, ...) * n.
  defp spd(shape, seed) do
    m = r(shape, seed)
    n = elem(shape, tuple_size(shape) - 1)
    Mx.add(Mx.matmul(m, Mx.transpose(m, axes: Enum.to_list(0..(tuple_size(shape) - 3)//1) ++ [tuple_size(shape) - 1, tuple_size(shape) - 2])),
           Mx.multiply(Mx.eye(n, type: :f64), Mx.multiply(Mx.add(Mx.iota({n}, type: :f64), 1.0), n * 1.0)))
  end

  # One entry per differentiable primitive (vjp column D in c_src/ops.def):
  # {primitive, [{description, f, inputs}]}. Domains avoid kinks and poles.
  def cases do
    [
      as_type: [{"f64 -> f64", &Mx.as_type(&1, :f64), [r({3}, 1)]}],
      negate: [{"", &Mx.negate/1, [r({2, 3}, 1)]}],
      abs: [{"away from 0", &Mx.abs/1, [pos({4}, 2)]}, {"negative", &Mx.abs/1, [Mx.negate(pos({3}, 3))]}],
      square: [{"", &Mx.square/1, [r({3}, 4)]}],
      exp: [{"", &Mx.exp/1, [r({3}, 5)]}],
      expm1: [{"", &Mx.expm1/1, [r({3}, 6)]}],
      log: [{"", &Mx.log/1, [pos({3}, 7)]}],
      log1p: [{"", &Mx.log1p/1, [small({3}, 8)]}],
      sqrt: [{"", &Mx.sqrt/1, [pos({3}, 9)]}],
      rsqrt: [{"", &Mx.rsqrt/1, [pos({3}, 10)]}],
      reciprocal: [{"", &Mx.reciprocal/1, [pos({3}, 11)]}],
      sin: [{"", &Mx.sin/1, [r({3}, 12)]}],
      cos: [{"", &Mx.cos/1, [r({3}, 13)]}],
      tan: [{"", &Mx.tan/1, [small({3}, 14)]}],
      asin: [{"", &Mx.asin/1, [small({3}, 15)]}],
      acos: [{"", &Mx.acos/1, [small({3}, 16)]}],
      atan: [{"", &Mx.atan/1, [r({3}, 17)]}],
      sinh: [{"", &Mx.sinh/1, [r({3}, 18)]}],
      cosh: [{"", &Mx.cosh/1, [r({3}, 19)]}],
      tanh: [{"", &Mx.tanh/1, [r({3}, 20)]}],
      sigmoid: [{"", &Mx.sigmoid/1, [r({3}, 21)]}],
      erf: [{"", &Mx.erf/1, [r({3}, 22)]}],
      erf_inv: [{"", &Mx.erf_inv/1, [small({3}, 23)]}],
      lgamma: [{"", &Mx.lgamma/1, [pos({3}, 24)]}],
      digamma: [{"", &Mx.digamma/1, [pos({3}, 120)]}],
      erfc: [{"", &Mx.erfc/1, [r({3}, 121)]}],
      log_ndtr: [{"into the lower tail", &Mx.log_ndtr/1, [Mx.tensor([-30.0, -3.0, 0.5, 4.0], type: :f64)]}],
      ndtri: [{"", &Mx.ndtri/1, [random_f64({3}, 122, 0.02, 0.98)]}],
      # x only: the shape parameters are closed over (their gradient raises, see special_test.exs).
      igamma: [{"x, a fixed", &Mx.igamma(Mx.tensor([0.5, 2.0, 30.0], type: :f64), &1),
                [Mx.tensor([0.7, 1.3, 27.5], type: :f64)]}],
      igammac: [{"x, a fixed", &Mx.igammac(Mx.tensor([[0.5], [3.0]], type: :f64), &1), [pos({3}, 123)]}],
      betainc: [{"x, a and b fixed", &Mx.betainc(Mx.tensor([0.5, 2.0, 40.0], type: :f64), Mx.tensor([1.5, 3.0, 60.0], type: :f64), &1),
                 [Mx.tensor([0.3, 0.45, 0.38], type: :f64)]}],
      add: [{"broadcast", &Mx.add/2, [r({2, 3}, 25), r({3}, 26)]}],
      subtract: [{"broadcast", &Mx.subtract/2, [r({2, 1}, 27), r({1, 3}, 28)]}],
      multiply: [{"broadcast", &Mx.multiply/2, [r({2, 3}, 29), r({}, 30)]}],
      divide: [{"broadcast", &Mx.divide/2, [r({2, 3}, 31), pos({3}, 32)]}],
      pow: [{"", &Mx.pow/2, [pos({3}, 33), r({3}, 34)]}],
      max: [{"", &Mx.max/2, [r({4}, 35), r({4}, 36)]}],
      min: [{"", &Mx.min/2, [r({4}, 37), r({4}, 38)]}],
      remainder: [{"", &Mx.remainder/2, [Mx.tensor([2.5, -2.5, 0.7], type: :f64), Mx.tensor([1.0, 1.0, 0.4], type: :f64)]}],
      atan2: [{"", &Mx.atan2/2, [r({3}, 39), pos({3}, 40)]}],
      logaddexp: [{"", &Mx.logaddexp/2, [r({3}, 41), r({3}, 42)]}],
      select: [{"", &Mx.select(Mx.tensor([1, 0, 1]), &1, &2), [r({3}, 43), r({2, 3}, 44)]}],
      sum: [{"axis 1", &Mx.sum(&1, axes: [1]), [r({2, 3}, 45)]}, {"all", &Mx.sum/1, [r({2, 3}, 46)]}],
      product: [{"axis 0", &Mx.product(&1, axes: [0]), [pos({3, 2}, 47)]}],
      reduce_max: [{"", &Mx.reduce_max(&1, axes: [1]), [r({2, 4}, 48)]}],
      reduce_min: [{"", &Mx.reduce_min(&1, axes: [0], keep_axes: true), [r({3, 2}, 49)]}],
      cumulative_sum: [{"", &Mx.cumulative_sum(&1, axis: 1), [r({2, 3}, 50)]},
                       {"reverse", &Mx.cumulative_sum(&1, reverse: true), [r({4}, 51)]}],
      cumulative_product: [{"", &Mx.cumulative_product(&1, axis: 0), [pos({3, 2}, 52)]}],
      reshape: [{"", &Mx.reshape(&1, {3, 2}), [r({2, 3}, 53)]}],
      transpose: [{"", &Mx.transpose(&1, axes: [1, 2, 0]), [r({2, 3, 2}, 54)]}],
      broadcast: [{"", &Mx.broadcast(&1, {2, 3}), [r({3}, 55)]}],
      concatenate: [{"", &Mx.concatenate([&1, &2], axis: 1), [r({2, 2}, 56), r({2, 1}, 57)]}],
      slice: [{"strided", &Mx.slice(&1, [0, 1], [2, 2], strides: [1, 2]), [r({3, 5}, 58)]}],
      pad: [{"interior and crop", &Mx.pad(&1, &2, [{1, -1, 1}, {0, 2, 0}]), [r({3, 2}, 59), r({}, 60)]}],
      reverse: [{"", &Mx.reverse(&1, axes: [0]), [r({3, 2}, 61)]}],
      take: [{"axis 1, repeats", &Mx.take(&1, idx([[2, 0], [2, 2]]), axis: 1), [r({2, 3}, 62)]}],
      take_along_axis: [{"", &Mx.take_along_axis(&1, idx([[1, 1], [0, 2]]), axis: 1), [r({2, 3}, 63)]}],
      gather: [{"", &Mx.gather(&1, idx([[1, 0], [1, 0], [0, 2]])), [r({2, 3}, 64)]}],
      indexed_add: [{"", &Mx.indexed_add(&1, idx([[0], [2], [0]]), &2), [r({3, 2}, 65), r({3, 2}, 66)]}],
      indexed_put: [{"", &Mx.indexed_put(&1, idx([[1], [2]]), &2), [r({3, 2}, 67), r({2, 2}, 68)]}],
      sort: [{"desc", &Mx.sort(&1, axis: 1, direction: :desc), [r({2, 4}, 69)]}],
      matmul: [{"batched, broadcast", &Mx.matmul/2, [r({2, 2, 3}, 70), r({3, 4}, 71)]},
               {"vector", &Mx.matmul/2, [r({3}, 72), r({3, 2}, 73)]},
               # a transpose of the last two axes becomes a flag of the matmul (no copy)
               {"a @ bᵀ, batched", &Mx.matmul(&1, Mx.transpose(&2)), [r({2, 2, 3}, 150), r({4, 3}, 151)]},
               {"aᵀ @ bᵀ", &Mx.matmul(Mx.transpose(&1), Mx.transpose(&2)), [r({3, 2}, 152), r({4, 3}, 153)]}],
      cholesky: [{"batched", &Mx.Linalg.cholesky/1, [spd({2, 3, 3}, 74)]}],
      lu: [{"det, pivoting", &Mx.Linalg.det/1, [r({2, 4, 4}, 85)]},
           {"slogdet", fn a -> elem(Mx.Linalg.slogdet(a), 1) end, [r({3, 3}, 86)]},
           {"inv", &Mx.Linalg.inv/1, [spd({3, 3}, 87)]}],
      solve: [{"matrix rhs, broadcast", &Mx.Linalg.solve/2, [spd({2, 3, 3}, 75), r({3, 2}, 76)]},
              {"vector rhs", &Mx.Linalg.solve/2, [spd({3, 3}, 77), r({3}, 78)]}],
      triangular_solve: [{"lower left", &Mx.Linalg.triangular_solve(&1, &2), [spd({3, 3}, 79), r({3, 2}, 80)]},
                         {"upper right transposed", &Mx.Linalg.triangular_solve(&1, &2, lower: false, left_side: false, transform_a: :transpose),
                          [spd({3, 3}, 81), r({2, 3}, 82)]}],
      eigh: [{"values and vectors", fn a -> {w, v} = Mx.Linalg.eigh(a); Mx.concatenate([Mx.new_axis(w, 0), Mx.multiply(v, Mx.sign(v[0]))]) end, [spd({3, 3}, 83)]},
             {"values only", &Mx.Linalg.eigvalsh/1, [spd({2, 3, 3}, 84)]}]
    ] ++ complex_cases() ++ everyday_cases() ++ conv_cases() ++ quant_cases() ++ conv_grad_cases() ++
        sdpa_cases()
  end

  # The everyday unary rows (asinh, acosh, atanh, log2, log10), and LU through Mx.Linalg.lu's factors.
  defp everyday_cases do
    [
      asinh: [{"", &Mx.asinh/1, [random_f64({3}, 130, -3.0, 3.0)]}],
      acosh: [{"above 1", &Mx.acosh/1, [random_f64({3}, 131, 1.2, 4.0)]}],
      atanh: [{"", &Mx.atanh/1, [small({3}, 132)]}],
      log2: [{"", &Mx.log2/1, [pos({3}, 133)]}],
      log10: [{"", &Mx.log10/1, [pos({3}, 134)]}]
    ]
  end

  # Complex values inside f64 -> f64 functions: built with complex/2 and read out
  # with real/imag/abs/angle, so every complex rule is checked through real inputs.
  defp cx(x, y), do: Mx.complex(x, y)
  defp parts(z), do: Mx.add(Mx.real(z), Mx.multiply(Mx.imag(z), 0.7))

  defp complex_cases do
    [
      complex: [{"broadcast", fn x, y -> parts(Mx.multiply(cx(x, y), cx(y, x))) end, [r({2, 3}, 90), r({3}, 91)]}],
      real: [{"of z^2", fn x, y -> Mx.real(Mx.square(cx(x, y))) end, [r({3}, 92), r({3}, 93)]}],
      imag: [{"of exp z", fn x, y -> Mx.imag(Mx.exp(cx(x, y))) end, [r({3}, 94), r({3}, 95)]}],
      conjugate: [{"", fn x, y -> parts(Mx.multiply(Mx.conjugate(cx(x, y)), cx(y, 0.5))) end, [r({3}, 96), r({3}, 97)]}],
      angle: [{"away from 0", fn x, y -> Mx.angle(cx(x, y)) end, [pos({3}, 98), r({3}, 99)]}],
      fft: [{"last axis", fn x, y -> parts(Mx.FFT.fft(cx(x, y))) end, [r({2, 5}, 100), r({2, 5}, 101)]},
            {"axis 0, padded, ortho", fn x -> parts(Mx.FFT.ifft(x, axis: 0, n: 4, norm: :ortho)) end, [r({3, 2}, 102)]}],
      rfft: [{"even n, cropped", fn x -> parts(Mx.FFT.rfft(x, n: 4)) end, [r({2, 5}, 103)]},
             {"odd n, axis 0", fn x -> parts(Mx.FFT.rfft(x, axis: 0)) end, [r({5, 2}, 104)]}],
      irfft: [{"even n", fn x, y -> Mx.FFT.irfft(cx(x, y)) end, [r({2, 4}, 105), r({2, 4}, 106)]},
              {"odd n, padded, forward", fn x, y -> Mx.FFT.irfft(cx(x, y), n: 7, axis: 0, norm: :forward) end,
               [r({3, 2}, 107), r({3, 2}, 108)]}],
      abs_complex: [{"abs of complex", fn x, y -> Mx.abs(cx(x, y)) end, [pos({3}, 109), r({3}, 110)]},
                    {"sqrt, log, divide", fn x, y -> parts(Mx.divide(Mx.log(cx(x, y)), Mx.sqrt(cx(y, x)))) end,
                     [pos({3}, 111), pos({3}, 112)]}]
    ]
  end

  # Convolution and window reductions (c_src/ops_conv.c): every option of Nx.conv, and windows
  # with distinct values (no ties, so max/min are differentiable at the inputs).
  defp conv_cases do
    x = Mx.tensor([[0.3, -1.2, 0.8, 2.1, -0.4], [1.5, 0.1, -0.9, 0.6, 1.1], [-1.7, 0.9, 0.2, -0.3, 1.9]], type: :f64)

    [
      conv: [{"2d strides, padding, both dilations, feature groups",
              &Mx.conv(&1, &2, strides: [2, 1], padding: [{1, 0}, {0, 1}], kernel_dilation: [1, 2], input_dilation: [1, 2],
                       feature_group_size: 2), [r({2, 4, 4, 3}, 130), r({4, 2, 2, 2}, 131)]},
             {"1d batch groups, strides", &Mx.conv(&1, &2, batch_group_size: 2, strides: 2), [r({4, 2, 5}, 132), r({4, 2, 2}, 133)]},
             {"3d same, channels last", &Mx.conv(&1, &2, padding: :same, input_permutation: [0, 4, 1, 2, 3],
                                                 output_permutation: [0, 4, 1, 2, 3]),
              [r({1, 3, 3, 2, 2}, 134), r({2, 2, 2, 2, 1}, 135)]}],
      window_sum: [{"strides, padding, dilation", &Mx.window_sum(&1, {2, 2}, strides: [1, 2], padding: [{1, 0}, {0, 1}], window_dilations: [2, 1]),
                    [r({4, 5}, 136)]}],
      window_max: [{"same padding, strides", &Mx.window_max(&1, {2, 3}, strides: [2, 1], padding: :same), [r({4, 5}, 137)]}],
      window_min: [{"dilation", &Mx.window_min(&1, {2, 2}, window_dilations: [1, 2]), [r({3, 5}, 138)]}],
      window_scatter_max: [{"source, overlapping windows and padding",
                            &Mx.window_scatter_max(x, &1, 0.5, {2, 2}, strides: [1, 2], padding: [{0, 1}, {1, 0}]), [r({3, 3}, 139)]}],
      window_scatter_min: [{"source", &Mx.window_scatter_min(x, &1, 0.0, {2, 3}, strides: [1, 1]), [r({2, 3}, 140)]}]
    ]
  end

  # quantized_matmul (c_src/ops_quant.c): x only; the packed f64 weights are closed over.
  # conv's gradient primitives as functions of their own inputs (second order): x's cotangent of
  # (g, w), w's of (x, g), through Mx.ConvGrad (Mx.vjp of Mx.conv).
  defp conv_grad_cases do
    cases =
      for {desc, xs, ws, opts, seed} <- [
            {"2d strides, padding, both dilations, feature groups", {2, 4, 4, 3}, {4, 2, 2, 2},
             [strides: [2, 1], padding: [{1, 0}, {0, 1}], kernel_dilation: [1, 2], input_dilation: [1, 2], feature_group_size: 2], 150},
            {"1d batch groups, strides, negative padding", {4, 2, 6}, {4, 2, 2}, [batch_group_size: 2, strides: 2, padding: [{1, -1}]], 153}
          ] do
        {x, w} = {r(xs, seed), r(ws, seed + 1)}
        g = r(Mx.shape(Mx.conv(x, w, opts)), seed + 2)
        {{desc, &Mx.ConvGrad.conv_input_grad(x, &2, &1, opts), [g, w]}, {desc, &Mx.ConvGrad.conv_kernel_grad(&1, w, &2, opts), [x, g]}}
      end

    [conv_input_grad: Enum.map(cases, &elem(&1, 0)), conv_kernel_grad: Enum.map(cases, &elem(&1, 1))]
  end

  defp quant_cases do
    {wq, s, b} = Mx.quantize(r({5, 64}, 140), group_size: 32, bits: 4)
    {vq, vs, vb} = Mx.quantize(r({8, 64}, 141), group_size: 64, bits: 2)

    [
      quantized_matmul: [{"transpose, 4 bits", &Mx.quantized_matmul(&1, wq, s, b, group_size: 32, bits: 4), [r({3, 64}, 142)]},
                         {"no transpose, 2 bits, rank 3",
                          &Mx.quantized_matmul(&1, vq, vs, vb, transpose: false, group_size: 64, bits: 2), [r({2, 3, 8}, 143)]}]
    ]
  end

  # scaled_dot_product_attention (c_src/ops_sdpa.c): q, k and v; the masks are constants.
  defp sdpa_cases do
    m = Mx.tensor([[0.5, -1.0, 0.0, 2.0], [0.0, -0.5, 1.0, -2.0], [1.0, 0.0, 0.0, -1.0]], type: :f64)
    [sq, sk, sv] = [r({1, 4, 3, 2}, 156), r({1, 2, 5, 2}, 157), r({1, 2, 5, 3}, 158)]

    [
      scaled_dot_product_attention: [
        {"GQA, causal, Lq < Lk, Dv != D", &Mx.NN.scaled_dot_product_attention(&1, &2, &3, mask: :causal),
         [r({1, 4, 3, 2}, 150), r({1, 2, 5, 2}, 151), r({1, 2, 5, 3}, 152)]},
        {"additive mask, scale, rank 3", &Mx.NN.scaled_dot_product_attention(&1, &2, &3, mask: m, scale: 0.7),
         [r({2, 3, 2}, 153), r({2, 4, 2}, 154), r({2, 4, 2}, 155)]}
      ],
      # its backward primitive, differentiated in the cotangent (what jvp needs); q, k, v closed over
      scaled_dot_product_attention_vjp: [
        {"GQA, causal: the cotangents of q, k, v as one vector", &sdpa_vjp_flat(&1, sq, sk, sv), [r({1, 4, 3, 3}, 159)]}
      ]
    ]
  end

  defp sdpa_vjp_flat(g, q, k, v) do
    f = &Mx.NN.scaled_dot_product_attention(&1, &2, &3, mask: :causal)
    {_, grads} = Mx.vjp(f, [q, k, v], g)
    grads |> Enum.map(&Mx.reshape(&1, {Mx.size(&1)})) |> Mx.concatenate()
  end
end
