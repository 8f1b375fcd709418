defmodule Mx.QuantTest do
  use ExUnit.Case, async: true
  alias Mx.{GradCheck, ReferenceCase}

  doctest Mx.Quantize

  # Reference cases: MLX's scheme in numpy (test/reference/generate_quant.py).
  for c <- ReferenceCase.load!(["quant"]) do
    @c c
    test c.name, do: check!(@c)
  end

  defp bits!(name, got, {:array, type, shape, hex}) do
    assert {Mx.type(got), Mx.shape(got)} == {type, shape}, "#{name}: got #{Mx.describe(got)}"

    assert Mx.to_binary(got) == Base.decode16!(hex),
           "#{name}: #{Mx.describe(got)} differs from the reference"
  end

  defp check!(%{fun: :quantize, args: [w], opts: opts, expected: {eq, es, eb}} = c) do
    {q, s, b} = Mx.quantize(ReferenceCase.decode(w), opts)
    bits!(c.name <> " (w_q)", q, eq)
    bits!(c.name <> " (scales)", s, es)
    bits!(c.name <> " (biases)", b, eb)
  end

  # scale * q + bias rounds the product, then the sum, in numpy and in the kernel: bit for bit.
  defp check!(%{fun: :dequantize, args: args, opts: opts, expected: e} = c) do
    [q, s, b] = Enum.map(args, &ReferenceCase.decode/1)
    bits!(c.name, Mx.dequantize(q, s, b, opts), e)
  end

  # Against x @ W~ (W~ the dequantized weight) rounded once: BLAS over W~ errs by γ(k)·Σ|x||W~|;
  # the direct loop forms s·Σx·q + b·Σx unrounded, within γ(k + 3)·Σ|x|(|s|q + |b|) of the exact
  # x @ (s·q + b), which W~ (two roundings) moves by γ(2) of the same sum: γ(k + 5)·abs_product,
  # plus the reference's own rounding u·|ref|.
  defp check!(
         %{fun: :quantized_matmul, args: args, opts: opts, expected: {:array, type, shape, _} = e} =
           c
       ) do
    [x, q, s, b] = Enum.map(args, &ReferenceCase.decode/1)
    got = Mx.quantized_matmul(x, q, s, b, opts)
    assert {Mx.type(got), Mx.shape(got)} == {type, shape}
    u = if type == :f32, do: :math.pow(2, -24), else: :math.pow(2, -53)
    n = c.aux.k + 5
    gamma = n * u / (1 - n * u)
    want = e |> ReferenceCase.decode() |> Mx.to_flat_list()
    bound = c.aux.abs_product |> ReferenceCase.decode() |> Mx.to_flat_list()

    for {{g, w}, p} <- Enum.zip(Enum.zip(Mx.to_flat_list(got), want), bound) do
      assert abs(g - w) <= gamma * p + u * abs(w),
             "#{c.name}: #{g} vs #{w} (bound #{gamma * p + u * abs(w)})"
    end
  end

  describe "round trip" do
    # Inside the group's range [bias, bias + n·scale] an element is at most half a step from
    # its level; MLX's rescale (scale = edge / q0) can shrink the range so the far edge is
    # clamped: there the error is the distance to the range's end. Plus float rounding of
    # the division and of scale·q + bias: 4u of the magnitudes.
    for bits <- [2, 4, 8], gs <- [32, 64, 128] do
      test "dequantize(quantize(w)) for bits #{bits}, group #{gs}" do
        bits = unquote(bits)
        gs = unquote(gs)
        w = GradCheck.random_f64({4, 2 * gs}, bits * 1000 + gs, -3.0, 2.0) |> Mx.as_type(:f32)
        {q, s, b} = Mx.quantize(w, group_size: gs, bits: bits)
        back = Mx.dequantize(q, s, b, group_size: gs, bits: bits)
        n = Bitwise.bsl(1, bits) - 1
        u = :math.pow(2, -24)

        per_element = fn t ->
          t |> Mx.reshape({4, 2, 1}) |> Mx.broadcast({4, 2, gs}) |> Mx.to_flat_list()
        end

        rows =
          Enum.zip([Mx.to_flat_list(w), Mx.to_flat_list(back), per_element.(s), per_element.(b)])

        for {x, y, sc, bi} <- rows do
          {lo, hi} = Enum.min_max([bi, bi + n * sc])
          outside = max(lo - x, max(x - hi, 0.0))
          slack = 4 * u * (abs(x) + abs(sc) * n + abs(bi))

          assert abs(x - y) <= max(abs(sc) / 2, outside) + slack,
                 "#{x} came back as #{y} (scale #{sc}, bias #{bi})"
        end
      end
    end

    test "zero comes back exactly when q0 != 0 (MLX's rescale)" do
      w = Mx.tensor([Enum.map(0..63, &(&1 * 0.25 - 6.0))], type: :f32)
      {q, s, b} = Mx.quantize(w, group_size: 64, bits: 8)

      assert Mx.dequantize(q, s, b, group_size: 64, bits: 8)
             |> Mx.to_flat_list()
             |> Enum.member?(0.0)
    end
  end

  describe "quantized_matmul" do
    setup do
      w = GradCheck.random_f64({12, 64}, 5)
      {q, s, b} = Mx.quantize(w, group_size: 32, bits: 4)
      %{q: q, s: s, b: b, deq: Mx.dequantize(q, s, b, group_size: 32, bits: 4)}
    end

    test "equals matmul against the dequantized weight, both transposes, direct and BLAS paths",
         ctx do
      for m <- [1, 8, 9, 40] do
        x = GradCheck.random_f64({m, 64}, m)
        got = Mx.quantized_matmul(x, ctx.q, ctx.s, ctx.b, group_size: 32, bits: 4)
        want = Mx.matmul(x, Mx.transpose(ctx.deq))
        assert max_diff(got, want) <= 1.0e-12

        y = GradCheck.random_f64({m, 12}, m + 1)

        got =
          Mx.quantized_matmul(y, ctx.q, ctx.s, ctx.b, transpose: false, group_size: 32, bits: 4)

        assert max_diff(got, Mx.matmul(y, ctx.deq)) <= 1.0e-12
      end
    end

    test "gradient with respect to x (finite differences, vjp against jvp)", ctx do
      f = &Mx.quantized_matmul(&1, ctx.q, ctx.s, ctx.b, group_size: 32, bits: 4)
      GradCheck.check_grads!(f, [GradCheck.random_f64({3, 64}, 9)])
      GradCheck.check_vjp_jvp!(f, [GradCheck.random_f64({2, 64}, 10)])
      g = &Mx.quantized_matmul(&1, ctx.q, ctx.s, ctx.b, transpose: false, group_size: 32, bits: 4)
      GradCheck.check_grads!(g, [GradCheck.random_f64({2, 12}, 11)])
    end

    test "no gradient with respect to the scales or biases: raises naming the op", ctx do
      x = GradCheck.random_f64({2, 64}, 12)

      for f <- [
            fn s -> Mx.sum(Mx.quantized_matmul(x, ctx.q, s, ctx.b, group_size: 32, bits: 4)) end,
            fn b -> Mx.sum(Mx.quantized_matmul(x, ctx.q, ctx.s, b, group_size: 32, bits: 4)) end
          ] do
        assert_raise Mx.Error,
                     ~r/\[quantized_matmul\] has no gradient with respect to w_q, scales or biases/,
                     fn ->
                       Mx.grad(f).(ctx.s)
                     end
      end

      assert_raise Mx.Error, ~r/\[quantize\] has no gradient/, fn ->
        Mx.grad(fn w -> Mx.quantize(w, group_size: 32) |> elem(1) |> Mx.sum() end).(
          GradCheck.random_f64({1, 32}, 1)
        )
      end
    end

    test "vmap over x is one node; over the weights it runs per example", ctx do
      xs = GradCheck.random_f64({3, 2, 64}, 13)
      f = &Mx.quantized_matmul(&1, ctx.q, ctx.s, ctx.b, group_size: 32, bits: 4)
      loop = Mx.stack(for i <- 0..2, do: f.(xs[i]))
      assert max_diff(Mx.vmap(f).(xs), loop) == 0.0
      # vectors: 12 examples stay 12 one-row products (the direct path), not one 12-row product
      vs = GradCheck.random_f64({12, 64}, 16)
      assert max_diff(Mx.vmap(f).(vs), Mx.stack(for i <- 0..11, do: f.(vs[i]))) == 0.0

      ss = Mx.stack([ctx.s, Mx.multiply(ctx.s, 2.0)])
      x = GradCheck.random_f64({2, 64}, 14)
      h = &Mx.quantized_matmul(x, ctx.q, &1, ctx.b, group_size: 32, bits: 4)
      loop = Mx.stack([h.(ctx.s), h.(Mx.multiply(ctx.s, 2.0))])
      assert max_diff(Mx.vmap(h).(ss), loop) == 0.0
    end
  end

  describe "batched weights" do
    setup do
      w = GradCheck.random_f64({3, 12, 64}, 21)
      {q, s, b} = Mx.quantize(w, group_size: 32, bits: 4)
      %{q: q, s: s, b: b, deq: Mx.dequantize(q, s, b, group_size: 32, bits: 4)}
    end

    test "each x matrix meets its weight: a loop over the batch, direct and BLAS paths", ctx do
      f = &Mx.quantized_matmul(&1, &2, &3, &4, group_size: 32, bits: 4)
      g = &Mx.quantized_matmul(&1, &2, &3, &4, transpose: false, group_size: 32, bits: 4)

      for m <- [1, 5, 40] do
        x = GradCheck.random_f64({3, m, 64}, m)
        loop = Mx.stack(for i <- 0..2, do: f.(x[i], ctx.q[i], ctx.s[i], ctx.b[i]))
        assert max_diff(f.(x, ctx.q, ctx.s, ctx.b), loop) == 0.0
        # one x against every weight: x's rows broadcast
        loop = Mx.stack(for i <- 0..2, do: f.(x[0], ctx.q[i], ctx.s[i], ctx.b[i]))
        assert max_diff(f.(x[0], ctx.q, ctx.s, ctx.b), loop) == 0.0
        y = GradCheck.random_f64({m, 12}, m + 3)
        loop = Mx.stack(for i <- 0..2, do: g.(y, ctx.q[i], ctx.s[i], ctx.b[i]))
        assert max_diff(g.(y, ctx.q, ctx.s, ctx.b), loop) == 0.0
      end

      # a vector x is one row, dropped from the result as matmul does
      v = GradCheck.random_f64({64}, 7)
      assert Mx.shape(f.(v, ctx.q, ctx.s, ctx.b)) == {3, 12}

      assert max_diff(
               f.(v, ctx.q, ctx.s, ctx.b),
               Mx.matmul(v, Mx.transpose(ctx.deq, axes: [0, 2, 1]))
             ) <= 1.0e-12
    end

    test "gradient with respect to x, summed over the axes the weights broadcast it along", ctx do
      f = &Mx.quantized_matmul(&1, ctx.q, ctx.s, ctx.b, group_size: 32, bits: 4)
      GradCheck.check_grads!(f, [GradCheck.random_f64({2, 64}, 22)])
      GradCheck.check_grads!(f, [GradCheck.random_f64({3, 2, 64}, 23)])
      GradCheck.check_vjp_jvp!(f, [GradCheck.random_f64({1, 2, 64}, 24)])
    end

    test "vmap over the weights, x batched or not, matches a loop bit for bit", ctx do
      x = GradCheck.random_f64({2, 64}, 25)
      xs = GradCheck.random_f64({3, 2, 64}, 26)
      f = &Mx.quantized_matmul(&1, &2, &3, &4, group_size: 32, bits: 4)
      loop = Mx.stack(for i <- 0..2, do: f.(x, ctx.q[i], ctx.s[i], ctx.b[i]))
      assert max_diff(Mx.vmap(&f.(x, &1, &2, &3)).(ctx.q, ctx.s, ctx.b), loop) == 0.0
      loop = Mx.stack(for i <- 0..2, do: f.(xs[i], ctx.q[i], ctx.s[i], ctx.b[i]))
      assert max_diff(Mx.vmap(f).(xs, ctx.q, ctx.s, ctx.b), loop) == 0.0
      # per-example x of rank 3 against a per-example matrix: all its rows meet that matrix
      x3 = GradCheck.random_f64({4, 2, 64}, 27)
      loop = Mx.stack(for i <- 0..2, do: f.(x3, ctx.q[i], ctx.s[i], ctx.b[i]))
      assert max_diff(Mx.vmap(&f.(x3, &1, &2, &3)).(ctx.q, ctx.s, ctx.b), loop) == 0.0
      # x batched, the same batched weights for every example
      x5 = GradCheck.random_f64({2, 5, 64}, 29)
      loop = Mx.stack(for i <- 0..1, do: f.(x5[i], ctx.q, ctx.s, ctx.b))
      assert max_diff(Mx.vmap(&f.(&1, ctx.q, ctx.s, ctx.b)).(x5), loop) == 0.0
      # per-example batched weights ([2, 12, 8] each) and a vector x
      q4 = Mx.stack([ctx.q[0..1], ctx.q[1..2]])
      s4 = Mx.stack([ctx.s[0..1], ctx.s[1..2]])
      b4 = Mx.stack([ctx.b[0..1], ctx.b[1..2]])
      v = GradCheck.random_f64({64}, 28)
      loop = Mx.stack(for i <- 0..1, do: f.(v, q4[i], s4[i], b4[i]))
      assert max_diff(Mx.vmap(&f.(v, &1, &2, &3)).(q4, s4, b4), loop) == 0.0
    end
  end

  test "vmap of quantize and dequantize matches a loop over examples" do
    ws = GradCheck.random_f64({3, 2, 64}, 15)
    q = fn w -> Mx.quantize(w, group_size: 32, bits: 2) end
    {bq, bs, bb} = Mx.vmap(q).(ws)
    loop = for i <- 0..2, do: q.(ws[i])

    for {got, k} <- [{bq, 0}, {bs, 1}, {bb, 2}] do
      assert Mx.to_list(got) == Enum.map(loop, &Mx.to_list(elem(&1, k)))
    end

    d = fn s -> Mx.dequantize(bq[0], s, bb[0], group_size: 32, bits: 2) end
    assert Mx.to_list(Mx.vmap(d).(bs)) == Enum.map(0..2, &Mx.to_list(d.(bs[&1])))
  end

  describe "errors name the op and the fix" do
    test "schemes, dtypes and shapes" do
      w = Mx.ones({2, 64})
      {q, s, b} = Mx.quantize(w)

      assert_raise Mx.Error, ~r/\[quantize\] bits must be 2, 4 or 8, got 3/, fn ->
        Mx.quantize(w, bits: 3)
      end

      assert_raise Mx.Error,
                   ~r/\[quantize\] group_size must be 32, 64 or 128 \(MLX's\), got 16/,
                   fn ->
                     Mx.quantize(w, group_size: 16)
                   end

      assert_raise Mx.Error,
                   ~r/\[quantize\] w must be f32 or f64, got s64.*cast with as_type/,
                   fn ->
                     Mx.quantize(Mx.iota({2, 64}, type: :s64))
                   end

      assert_raise Mx.Error,
                   ~r/\[quantize\] the last axis of w f32\[2\]\[96\] must be a multiple of group_size 64/,
                   fn ->
                     Mx.quantize(Mx.ones({2, 96}))
                   end

      assert_raise ArgumentError, ~r/unknown option/i, fn -> Mx.quantize(w, group: 64) end
      assert_raise Mx.Error, ~r/\[dequantize\] w_q must be u32/, fn -> Mx.dequantize(s, s, b) end

      assert_raise Mx.Error,
                   ~r/\[dequantize\] scales .* and biases .* must both be f32 or both f64/,
                   fn ->
                     Mx.dequantize(q, s, Mx.as_type(b, :f64))
                   end

      assert_raise Mx.Error, ~r/\[dequantize\] .* do not fit group_size 32 and bits 4/, fn ->
        Mx.dequantize(q, s, b, group_size: 32)
      end

      assert_raise Mx.Error,
                   ~r/\[quantized_matmul\] x f64\[1\]\[64\] must have the scales' dtype f32/,
                   fn ->
                     Mx.quantized_matmul(Mx.ones({1, 64}, type: :f64), q, s, b)
                   end

      assert_raise Mx.Error,
                   ~r/\[quantized_matmul\] x f32\[1\]\[64\] needs a last axis of 2.*check transpose/,
                   fn ->
                     Mx.quantized_matmul(Mx.ones({1, 64}), q, s, b, transpose: false)
                   end

      # batched weights are allowed now (issue 13); a vector w_q or unbroadcastable batches raise
      assert_raise Mx.Error,
                   ~r/\[quantized_matmul\] w_q must be a matrix or a batch of matrices/,
                   fn ->
                     {q1, s1, b1} = Mx.quantize(Mx.ones({64}))
                     Mx.quantized_matmul(Mx.ones({1, 64}), q1, s1, b1)
                   end

      assert_raise Mx.Error,
                   ~r/\[quantized_matmul\] the batch axes of x f32\[3\]\[1\]\[64\] and w_q u32\[2\]\[2\]\[8\] do not broadcast/,
                   fn ->
                     {q3, s3, b3} = Mx.quantize(Mx.ones({2, 2, 64}))
                     Mx.quantized_matmul(Mx.ones({3, 1, 64}), q3, s3, b3)
                   end

      assert_raise ArgumentError, ~r/:transpose must be true or false/, fn ->
        Mx.quantized_matmul(Mx.ones({1, 64}), q, s, b, transpose: 1)
      end
    end

    test "a NaN or infinity in a group raises at evaluation, naming the group" do
      w =
        Mx.tensor([List.duplicate(1.0, 32) ++ [1.0, :nan] ++ List.duplicate(0.0, 30)], type: :f32)

      {q, _s, _b} = Mx.quantize(w, group_size: 32)

      assert_raise Mx.Error,
                   ~r/\[quantize\] group 1 of w \(elements 32\.\.63.*\) holds a NaN or infinity/,
                   fn ->
                     Mx.to_list(q)
                   end
    end
  end

  defp max_diff(a, b), do: Mx.subtract(a, b) |> Mx.abs() |> Mx.reduce_max() |> Mx.to_number()
end
