defmodule Mx.ConvTest do
  use ExUnit.Case, async: true
  alias Mx.ReferenceCase
  doctest Mx.Conv

  # Long-double loops checked against torch (conv) and numpy window loops:
  # test/reference/generate_conv.py; conv's gradients against torch.autograd (generate_conv_grad.py,
  # through Mx.ConvGrad). Finite differences: Mx.OpCases in transforms_test.exs.
  for c <- ReferenceCase.load!(["conv", "window", "conv_grad"]) do
    @c c
    test c.name, do: ReferenceCase.check!(@c)
  end

  defp f64(list), do: Mx.tensor(list, type: :f64)

  describe "conv" do
    test "f16 and bf16 compute in f32 and round back; integers compute in f32" do
      x = Mx.tensor([[[1.0, 2.0, 3.0]]], type: :f16)
      assert Mx.type(Mx.conv(x, Mx.tensor([[[1.0, 1.0]]], type: :f16))) == :f16
      assert Mx.conv(x, Mx.tensor([[[1.0, 1.0]]], type: :f16)) |> Mx.to_list() == [[[3.0, 5.0]]]
      assert Mx.type(Mx.conv(Mx.tensor([[[1, 2, 3]]]), Mx.tensor([[[1, 1]]]))) == :f32

      assert Mx.type(
               Mx.conv(Mx.tensor([[[1, 2, 3]]], type: :bf16), Mx.tensor([[[1, 1]]], type: :f64))
             ) == :f64
    end

    test "complex inputs (Nx's doctest)" do
      left = Mx.complex(Mx.tensor([[[1.0, 2.0, 3.0]]]), Mx.tensor([[[1.0, 0.0, -3.0]]]))
      right = Mx.complex(Mx.tensor([[[1.0, 0.0, 0.0]]]), Mx.tensor([[[0.0, 2.0, 3.0]]]))
      out = Mx.conv(left, right, padding: [{2, 2}])
      assert Mx.real(out) |> Mx.to_list() == [[[-3.0, -2.0, 10.0, 8.0, 3.0]]]
      assert Mx.imag(out) |> Mx.to_list() == [[[3.0, 8.0, 14.0, 6.0, -3.0]]]
    end

    test "a window larger than the padded input gives an empty spatial axis" do
      assert Mx.shape(Mx.conv(Mx.ones({2, 1, 2}), Mx.ones({3, 1, 3}))) == {2, 3, 0}

      assert Mx.conv(Mx.ones({2, 1, 2}), Mx.ones({3, 1, 3})) |> Mx.to_list() == [
               [[], [], []],
               [[], [], []]
             ]
    end

    test "large inputs split the columns into blocks and give the direct sum" do
      # 40 channels x 9 taps x 64 x 64 positions: more than one 8 MB column block
      x = Mx.Random.uniform(Mx.Random.key(3), shape: {1, 40, 66, 66}, type: :f64)
      w = Mx.Random.uniform(Mx.Random.key(4), shape: {2, 40, 3, 3}, type: :f64)
      got = Mx.conv(x, w)
      # the same sum as 9 shifted matmuls over channels
      want =
        for i <- 0..2, j <- 0..2, reduce: Mx.zeros({1, 2, 64, 64}, type: :f64) do
          acc ->
            xs = Mx.slice(x, [0, 0, i, j], [1, 40, 64, 64]) |> Mx.reshape({40, 64 * 64})
            ws = Mx.slice(w, [0, 0, i, j], [2, 40, 1, 1]) |> Mx.reshape({2, 40})
            Mx.add(acc, Mx.matmul(ws, xs) |> Mx.reshape({1, 2, 64, 64}))
        end

      err = Mx.subtract(got, want) |> Mx.abs() |> Mx.reduce_max() |> Mx.to_number()
      # 360 terms of products in [0, 1): gamma(361) * 360 for f64
      assert err <= 361 * :math.pow(2, -53) * 360
    end

    test "vmap batches the input alone (folded into the batch), the kernel alone and both (grouped)" do
      x = Mx.Random.normal(Mx.Random.key(5), shape: {3, 2, 2, 6}, type: :f64)
      w = Mx.Random.normal(Mx.Random.key(6), shape: {3, 5, 2, 3}, type: :f64)
      f = fn x, w -> Mx.conv(x, w, strides: 2, padding: [{1, 1}]) end
      alone = Mx.Transforms.vmap(f, [0, nil]).(x, w[0])
      both = Mx.Transforms.vmap(f).(x, w)
      kernels = Mx.Transforms.vmap(f, [nil, 0]).(x[0], w)

      for b <- 0..2 do
        assert Mx.to_list(alone[b]) == Mx.to_list(f.(x[b], w[0]))
        assert Mx.to_list(both[b]) == Mx.to_list(f.(x[b], w[b]))
        assert Mx.to_list(kernels[b]) == Mx.to_list(f.(x[0], w[b]))
      end
    end

    test "options are checked" do
      x = Mx.ones({1, 2, 4})
      w = Mx.ones({3, 2, 2})

      assert_raise ArgumentError, ~r/Mx.conv: unknown option stride:/, fn ->
        Mx.conv(x, w, stride: 2)
      end

      assert_raise ArgumentError, ~r/need the same rank, at least 3/, fn ->
        Mx.conv(Mx.ones({2, 4}), Mx.ones({2, 2}))
      end

      assert_raise ArgumentError, ~r/strides must be an integer or a list of 1 integers/, fn ->
        Mx.conv(x, w, strides: [1, 1])
      end

      assert_raise ArgumentError, ~r/padding must be :valid, :same or a list of 1/, fn ->
        Mx.conv(x, w, padding: :full)
      end

      assert_raise ArgumentError, ~r/input_permutation must list each of the 3 axes once/, fn ->
        Mx.conv(x, w, input_permutation: [0, 0, 1])
      end

      assert_raise Mx.Error, ~r/\[conv\] kernel dilations must be positive/, fn ->
        Mx.conv(x, w, kernel_dilation: 0)
      end

      assert_raise Mx.Error, ~r/\[conv\] .* feature_group_size 2/, fn ->
        Mx.conv(x, w, feature_group_size: 2)
      end

      assert_raise Mx.Error, ~r/at most one of them > 1/, fn ->
        Mx.conv(Mx.ones({2, 2, 4}), Mx.ones({2, 1, 2}), feature_group_size: 2, batch_group_size: 2)
      end

      assert_raise Mx.Error, ~r/batch_group_size 3 must divide/, fn ->
        Mx.conv(x, w, batch_group_size: 3)
      end

      assert_raise Mx.Error, ~r/crops more than the input/, fn ->
        Mx.conv(x, w, padding: [{-3, -2}])
      end
    end
  end

  describe "windows" do
    test "window_product has no gradient yet and says so" do
      e =
        assert_raise Mx.Error, fn ->
          Mx.grad(fn x -> Mx.sum(Mx.window_product(x, {2})) end).(f64([1.0, 2.0, 3.0]))
        end

      assert e.message =~ "window_product"
    end

    test "window_max's gradient goes to the last maximum of each window, as Nx's window_scatter_max" do
      g =
        Mx.grad(fn x -> Mx.sum(Mx.window_max(x, {2}, strides: 1)) end).(f64([1.0, 3.0, 3.0, 2.0]))

      assert Mx.to_list(g) == [0.0, 1.0, 2.0, 0.0]
    end

    test "padding is never selected by the scatters, even for windows of smaller values" do
      out =
        Mx.window_scatter_max(f64([-5.0, -7.0]), f64([1.0, 2.0]), 0.0, {2},
          padding: [{1, 0}],
          strides: 1
        )

      assert Mx.to_list(out) == [3.0, 0.0]
    end

    test "integer extremes pad max and min exactly" do
      x = Mx.tensor([9_223_372_036_854_775_807, 1], type: :s64)

      assert Mx.window_min(x, {2}, padding: [{1, 1}]) |> Mx.to_list() == [
               9_223_372_036_854_775_807,
               1,
               1
             ]

      assert Mx.window_max(Mx.tensor([0, 1], type: :u64), {2}, padding: [{1, 0}]) |> Mx.to_list() ==
               [0, 1]
    end

    test "vmap batches windows and scatters" do
      x = Mx.Random.normal(Mx.Random.key(7), shape: {3, 4, 5}, type: :f64)
      f = fn x -> Mx.window_max(x, {2, 2}, strides: [1, 2], padding: :same) end
      s = fn x, src -> Mx.window_scatter_min(x, src, 1.0, {2, 2}, strides: [2, 2]) end
      src = Mx.Random.normal(Mx.Random.key(8), shape: {3, 2, 2}, type: :f64)
      vf = Mx.Transforms.vmap(f).(x)
      vs = Mx.Transforms.vmap(s).(x, src)
      vs_shared = Mx.Transforms.vmap(s, [nil, 0]).(x[0], src)

      for b <- 0..2 do
        assert Mx.to_list(vf[b]) == Mx.to_list(f.(x[b]))
        assert Mx.to_list(vs[b]) == Mx.to_list(s.(x[b], src[b]))
        assert Mx.to_list(vs_shared[b]) == Mx.to_list(s.(x[0], src[b]))
      end
    end

    test "options and shapes are checked" do
      x = Mx.ones({3, 4})

      assert_raise ArgumentError, ~r/Mx.window_sum: unknown option dilations:/, fn ->
        Mx.window_sum(x, {2, 2}, dilations: 2)
      end

      assert_raise ArgumentError, ~r/window dimensions must be a tuple of 2 integers/, fn ->
        Mx.window_max(x, {2})
      end

      assert_raise ArgumentError,
                   ~r/Mx.window_scatter_max: unknown option window_dilations:/,
                   fn ->
                     Mx.window_scatter_max(x, Mx.ones({2, 3}), 0, {2, 2}, window_dilations: 1)
                   end

      assert_raise Mx.Error, ~r/\[window_min\] window dimensions must be positive/, fn ->
        Mx.window_min(x, {0, 1})
      end

      assert_raise Mx.Error,
                   ~r/\[window_scatter_max\] source f32\[3\]\[3\] does not match the windows/,
                   fn ->
                     Mx.window_scatter_max(x, Mx.ones({3, 3}), 0, {2, 2})
                   end

      assert_raise Mx.Error, ~r/\[window_scatter_min\] init_value must be a scalar/, fn ->
        Mx.window_scatter_min(x, Mx.ones({2, 3}), Mx.ones({2}), {2, 2})
      end

      assert_raise Mx.Error, ~r/\[window_sum\] has no kernel for c64|\[window_sum\].*c64/, fn ->
        Mx.window_sum(Mx.complex(x, x), {2, 2})
      end
    end
  end

  if Code.ensure_loaded?(Mx.Nx.Compiler) do
    test "Nx: gradients of conv and window_max in defn (Mx.Nx.Compiler) match Nx.BinaryBackend's evaluator" do
      f = fn x, w ->
        Nx.sum(Nx.window_max(Nx.conv(x, w, padding: :same), {1, 1, 2, 2}, strides: [1, 1, 2, 2]))
      end

      grad = fn x, w -> Nx.Defn.grad({x, w}, fn {x, w} -> f.(x, w) end) end
      x = Nx.iota({1, 2, 4, 4}, type: :f64) |> Nx.divide(7) |> Nx.sin()
      w = Nx.iota({3, 2, 3, 3}, type: :f64) |> Nx.divide(5) |> Nx.cos()

      {gx, gw} =
        Nx.Defn.jit(grad, compiler: Mx.Nx.Compiler).(
          Nx.backend_copy(x, Mx.Nx.Backend),
          Nx.backend_copy(w, Mx.Nx.Backend)
        )

      {bx, bw} =
        Nx.with_default_backend(Nx.BinaryBackend, fn ->
          Nx.Defn.jit(grad, compiler: Nx.Defn.Evaluator).(x, w)
        end)

      # f64 sums of at most 18 * 16 products of magnitude <= 2 in different orders: gamma(288) * 576 < 1e-10
      for {a, b} <- [{gx, bx}, {gw, bw}] do
        assert Nx.all_close(Nx.backend_copy(a, Nx.BinaryBackend), b, atol: 1.0e-10, rtol: 0)
               |> Nx.to_number() == 1
      end
    end
  end

  # conv's gradient primitives (conv_input_grad: gemm + col2im; conv_kernel_grad: im2col + gemm) beyond the
  # torch references above: column blocks, complex dtypes, empty outputs, vmap.
  describe "conv gradients" do
    alias Mx.ConvGrad

    defp inner(a, b), do: Mx.sum(Mx.multiply(a, b)) |> Mx.to_number()
    defp gamma(n, eps), do: n * eps / (1 - n * eps)

    test "large inputs: both gradients over several column blocks satisfy <conv(x, w), g> = <x, gx> = <w, gw>" do
      # 40 channels x 9 taps x 64 x 64 positions in f64: two 8 MB column blocks per example
      opts = [padding: [{0, 1}, {1, 0}], strides: [1, 1]]
      [x, w, g] =
        for {k, s} <- [{7, {2, 40, 66, 66}}, {8, {3, 40, 3, 3}}, {9, {2, 3, 65, 65}}],
            do: Mx.Random.normal(Mx.Random.key(k), shape: s, type: :f64)
      y = Mx.conv(x, w, opts)
      assert Mx.shape(y) == Mx.shape(g)
      {gx, gw} = {ConvGrad.conv_input_grad(x, w, g, opts), ConvGrad.conv_kernel_grad(x, w, g, opts)}
      # every side sums the same 360 * 3 * 2 * 65^2 products, in chains of at most 360 + 2 * 3 * 65^2 additions
      bound = inner(Mx.conv(Mx.abs(x), Mx.abs(w), opts), Mx.abs(g))
      tol = 2 * gamma(360 + 2 * 3 * 65 * 65, :math.pow(2, -53)) * bound
      lhs = inner(y, g)
      assert abs(lhs - inner(x, gx)) <= tol
      assert abs(lhs - inner(w, gw)) <= tol
    end

    test "complex: the gradients are the plain transposes (no conjugate), as conv's real parts combine" do
      opts = [strides: [2, 1], padding: [{1, 0}, {0, 1}], kernel_dilation: [1, 2], feature_group_size: 2]
      shapes = [{2, 4, 5, 5}, {4, 2, 2, 2}, {2, 4, 3, 4}]
      rnd = fn k, s -> Mx.Random.normal(Mx.Random.key(k), shape: s, type: :f64) end
      [xp, wp, gp] = for {s, k} <- Enum.with_index(shapes, 1), do: {rnd.(k, s), rnd.(k + 10, s)}
      [x, w, g] = for {re, im} <- [xp, wp, gp], do: Mx.complex(re, im)
      assert Mx.shape(Mx.conv(x, w, opts)) == Mx.shape(g)
      # (ar + i ai)(br + i bi) through a bilinear f: re f(ar, br) - f(ai, bi), im f(ar, bi) + f(ai, br)
      combine = fn f, {ar, ai}, {br, bi} -> {Mx.subtract(f.(ar, br), f.(ai, bi)), Mx.add(f.(ar, bi), f.(ai, br))} end
      abs_sum = fn {re, im} -> Mx.add(Mx.abs(re), Mx.abs(im)) end
      # x's gradient is bilinear in (g, w) and sums Og * taps = 8 products; w's in (x, g), N * positions = 24
      grads = [
        {"x", gp, wp, 8,
         fn p, q, t -> ConvGrad.conv_input_grad(Mx.as_type(x, t), Mx.as_type(q, t), Mx.as_type(p, t), opts) end},
        {"w", xp, gp, 24,
         fn p, q, t -> ConvGrad.conv_kernel_grad(Mx.as_type(p, t), Mx.as_type(w, t), Mx.as_type(q, t), opts) end}
      ]

      for type <- [:c128, :c64], {name, {pr, pi} = pp, {qr, qi} = qq, k, f} <- grads do
        {want_re, want_im} = combine.(&f.(&1, &2, :f64), pp, qq)
        got = f.(Mx.complex(pr, pi), Mx.complex(qr, qi), type)
        assert Mx.type(got) == type
        eps = if type == :c128, do: :math.pow(2, -53), else: :math.pow(2, -24)
        # each part sums 2k real products; rounding the inputs to c64 moves each product by < 2 eps more
        tol = Mx.multiply(f.(abs_sum.(pp), abs_sum.(qq), :f64), 2 * gamma(2 * k + 4, eps))

        for {part, want} <- [{Mx.real(got), want_re}, {Mx.imag(got), want_im}] do
          err = Mx.abs(Mx.subtract(Mx.as_type(part, :f64), want))
          excess = Mx.subtract(err, tol) |> Mx.reduce_max() |> Mx.to_number()
          assert excess <= 0, "#{type} #{name}: an element is #{excess} beyond its bound"
        end
      end
    end

    test "a window larger than the padded input: zero gradients of the input's and kernel's shapes" do
      {x, w} = {Mx.ones({2, 1, 2}), Mx.ones({3, 1, 3})}
      g = Mx.ones({2, 3, 0})
      assert ConvGrad.conv_input_grad(x, w, g) |> Mx.to_list() == Mx.zeros({2, 1, 2}) |> Mx.to_list()
      assert ConvGrad.conv_kernel_grad(x, w, g) |> Mx.to_list() == Mx.zeros({3, 1, 3}) |> Mx.to_list()
    end

    test "vmap batches either gradient's inputs alone or together, as each example's gradient" do
      opts = [strides: 2, padding: [{1, 1}], feature_group_size: 2]
      x = Mx.Random.normal(Mx.Random.key(5), shape: {3, 2, 4, 6}, type: :f64)
      w = Mx.Random.normal(Mx.Random.key(6), shape: {3, 4, 2, 3}, type: :f64)
      g = Mx.Random.normal(Mx.Random.key(7), shape: {3, 2, 4, 3}, type: :f64)
      gx = fn g, w -> ConvGrad.conv_input_grad(x[0], w, g, opts) end
      gw = fn x, g -> ConvGrad.conv_kernel_grad(x, w[0], g, opts) end

      for {f, axes, args, at} <- [
            {gx, [0, nil], [g, w[0]], fn b -> [g[b], w[0]] end},
            {gx, [nil, 0], [g[0], w], fn b -> [g[0], w[b]] end},
            {gx, [0, 0], [g, w], fn b -> [g[b], w[b]] end},
            {gw, [0, nil], [x, g[0]], fn b -> [x[b], g[0]] end},
            {gw, [nil, 0], [x[0], g], fn b -> [x[0], g[b]] end},
            {gw, [0, 0], [x, g], fn b -> [x[b], g[b]] end}
          ] do
        batched = apply(Mx.Transforms.vmap(f, axes), args)

        # the same gemms per example (a batch of groups or of N): the same sums in the same order
        for b <- 0..2, do: assert(Mx.to_list(batched[b]) == Mx.to_list(apply(f, at.(b))), "#{inspect(axes)} example #{b}")
      end
    end
  end
end
