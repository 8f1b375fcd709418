defmodule Mx.NN.QuantizedTest do
  # Mx.NN.QuantizedLinear, Mx.NN.QuantizedEmbedding and Mx.NN.quantize/3 (MLX's nn.quantize).
  use ExUnit.Case, async: true

  alias Mx.NN
  alias Mx.NN.{QuantizedEmbedding, QuantizedLinear}

  doctest Mx.NN.QuantizedLinear
  doctest Mx.NN.QuantizedEmbedding

  @u :math.pow(2, -24)

  # Higham's γ_n = n·u / (1 - n·u): the relative bound of an n-term f32 inner product.
  defp gamma(n), do: n * @u / (1 - n * @u)

  defp max_of(a), do: a |> Mx.reduce_max() |> Mx.to_number()
  defp bit_equal?(a, b), do: Mx.to_binary(a) == Mx.to_binary(b) and a.shape == b.shape

  defp f64(a), do: Mx.as_type(a, :f64)

  # |x| (|s|·q + |b|)ᵀ + |bias|, in f64: each product's magnitude in either path. The quantized
  # kernel may sum x·q·s and x·b apart, so a bound on |x||ŵ| alone would not cover it.
  defp magnitude(x, q, opts) do
    a =
      Mx.dequantize(q.weight, Mx.abs(q.scales), Mx.abs(q.biases), opts)
      |> f64()
      |> Mx.transpose()

    m = Mx.matmul(Mx.abs(f64(x)), a)
    if b = q[:bias], do: Mx.add(m, Mx.abs(f64(b))), else: m
  end

  for gs <- [32, 64, 128], bits <- [2, 4, 8] do
    test "QuantizedLinear equals Linear on the dequantized weight: group_size #{gs}, bits #{bits}" do
      {gs, bits} = {unquote(gs), unquote(bits)}
      scheme = [group_size: gs, bits: bits]
      [kp, kx] = NN.split_keys(Mx.Random.key(gs * 10 + bits), 2)
      {k, n} = {256, 24}
      lin = NN.Linear.init(kp, input_dims: k, output_dims: n)
      q = QuantizedLinear.from_linear(lin, scheme)

      # The packed layout of Mx.quantize/2, bias untouched.
      {w_q, s, b} = Mx.quantize(lin.weight, scheme)
      assert bit_equal?(q.weight, w_q) and bit_equal?(q.scales, s) and bit_equal?(q.biases, b)
      assert bit_equal?(q.bias, lin.bias)
      assert {q.weight.shape, q.scales.shape} == {{n, div(k * bits, 32)}, {n, div(k, gs)}}

      dense = %{weight: Mx.dequantize(w_q, s, b, scheme), bias: lin.bias}

      # 1 and 5 rows take the direct loop over packed words, 40 rows the dequantized tile + gemm.
      for rows <- [1, 5, 40] do
        x = Mx.Random.normal(Mx.Random.fold_in(kx, rows), 0.0, 1.0, shape: {rows, k})
        got = QuantizedLinear.apply(q, x, scheme)
        want = NN.Linear.apply(dense, x)

        # Both within γ(k+4)·magnitude of the exact product (k products, the bias add, the
        # dequantized weight's own rounding), so within twice that of each other.
        gap = Mx.subtract(f64(got), f64(want)) |> Mx.abs()
        bound = Mx.multiply(magnitude(x, q, scheme), 2 * gamma(k + 4))
        assert Mx.to_number(Mx.all(Mx.less_equal(gap, bound))), "rows #{rows}: gap #{max_of(gap)}"

        # The same op as the primitive, plus the bias: bit for bit.
        direct = Mx.add(Mx.quantized_matmul(x, w_q, s, b, scheme), lin.bias)
        assert bit_equal?(got, direct)
      end

      # Leading axes of x are kept, as Linear's.
      x3 = Mx.Random.normal(kx, 0.0, 1.0, shape: {2, 3, k})
      assert QuantizedLinear.apply(q, x3, scheme).shape == {2, 3, n}
    end

    test "QuantizedEmbedding equals Embedding on the dequantized table: group_size #{gs}, bits #{bits}" do
      {gs, bits} = {unquote(gs), unquote(bits)}
      scheme = [group_size: gs, bits: bits]
      emb = NN.Embedding.init(Mx.Random.key(bits), num_embeddings: 50, dims: 128)
      q = QuantizedEmbedding.from_embedding(emb, scheme)
      table = Mx.dequantize(q.weight, q.scales, q.biases, scheme)

      # Rows taken then dequantized are the same elementwise ops as dequantized then taken.
      idx = Mx.tensor([[3, 49, 0], [3, 7, 7]])
      got = QuantizedEmbedding.apply(q, idx, scheme)
      assert got.shape == {2, 3, 128}
      assert bit_equal?(got, NN.Embedding.apply(%{weight: table}, idx))

      # as_linear is the quantized matmul against the table (tied output heads).
      x = Mx.Random.normal(Mx.Random.key(1), 0.0, 1.0, shape: {4, 128})
      tied = QuantizedEmbedding.as_linear(q, x, scheme)
      assert bit_equal?(tied, QuantizedLinear.apply(q, x, scheme))
      gap = Mx.subtract(f64(tied), f64(NN.Embedding.as_linear(%{weight: table}, x))) |> Mx.abs()
      bound = Mx.multiply(magnitude(x, q, scheme), 2 * gamma(128 + 4))
      assert Mx.to_number(Mx.all(Mx.less_equal(gap, bound))), "gap #{max_of(gap)}"
    end
  end

  test "init/2 gives Linear's and Embedding's parameters, quantized" do
    key = Mx.Random.key(3)
    opts = [input_dims: 64, output_dims: 8, group_size: 32, bits: 8]
    q = QuantizedLinear.init(key, opts)

    ref =
      QuantizedLinear.from_linear(NN.Linear.init(key, input_dims: 64, output_dims: 8),
        group_size: 32,
        bits: 8
      )

    assert Enum.all?([:weight, :scales, :biases, :bias], &bit_equal?(q[&1], ref[&1]))
    refute Map.has_key?(QuantizedLinear.init(key, opts ++ [bias: false]), :bias)

    e = QuantizedEmbedding.init(key, num_embeddings: 10, dims: 64)
    assert {e.weight.shape, e.scales.shape, Mx.type(e.weight)} == {{10, 8}, {10, 1}, :u32}
  end

  test "errors name the layer: group size, missing weight, unknown options" do
    assert_raise ArgumentError,
                 ~r/^Mx.NN.QuantizedLinear.from_linear: the weight \{4, 96\}'s last axis \(96\) is not a multiple of group_size 64/,
                 fn -> QuantizedLinear.from_linear(%{weight: Mx.ones({4, 96})}) end

    assert_raise ArgumentError,
                 ~r/^Mx.NN.QuantizedLinear.init: the weight \{2, 20\}'s last axis \(20\) is not a multiple of group_size 64/,
                 fn ->
                   QuantizedLinear.init(Mx.Random.key(0), input_dims: 20, output_dims: 2)
                 end

    assert_raise ArgumentError,
                 ~r/^Mx.NN.QuantizedEmbedding.init: the weight \{4, 10\}'s last axis \(10\) is not a multiple of group_size 32/,
                 fn ->
                   QuantizedEmbedding.init(Mx.Random.key(0),
                     num_embeddings: 4,
                     dims: 10,
                     group_size: 32
                   )
                 end

    assert_raise ArgumentError,
                 ~r/^Mx.NN.QuantizedLinear.from_linear: expected a parameter map with a :weight/,
                 fn ->
                   QuantizedLinear.from_linear(%{bias: Mx.ones({2})})
                 end

    q = QuantizedLinear.from_linear(%{weight: Mx.ones({2, 64})})

    for {fun, msg} <- [
          {fn -> QuantizedLinear.apply(q, Mx.ones({1, 64}), grup_size: 64) end,
           ~r/^Mx.NN.QuantizedLinear.apply: unknown option grup_size:/},
          {fn -> QuantizedLinear.from_linear(%{weight: Mx.ones({2, 64})}, bit: 4) end,
           ~r/^Mx.NN.QuantizedLinear.from_linear: unknown option bit:/},
          {fn -> QuantizedEmbedding.from_embedding(%{weight: Mx.ones({2, 64})}, size: 4) end,
           ~r/^Mx.NN.QuantizedEmbedding.from_embedding: unknown option size:/},
          {fn -> QuantizedEmbedding.apply(q, Mx.tensor([0]), dim: 4) end,
           ~r/^Mx.NN.QuantizedEmbedding.apply: unknown option dim:/},
          {fn -> QuantizedEmbedding.as_linear(q, Mx.ones({1, 64}), bias: true) end,
           ~r/^Mx.NN.QuantizedEmbedding.as_linear: unknown option bias:/},
          {fn -> NN.quantize([q], [{NN.Linear, []}], predicate: nil) end,
           ~r/^Mx.NN.quantize: unknown option predicate:/}
        ],
        do: assert_raise(ArgumentError, msg, fun)

    # group_size and bits outside MLX's sets: the primitive's check, naming its values.
    assert_raise Mx.Error, "[quantize] group_size must be 32, 64 or 128 (MLX's), got 48", fn ->
      QuantizedLinear.from_linear(%{weight: Mx.ones({2, 96})}, group_size: 48)
    end

    assert_raise Mx.Error, "[quantize] bits must be 2, 4 or 8, got 3", fn ->
      QuantizedEmbedding.from_embedding(%{weight: Mx.ones({2, 64})}, bits: 3)
    end

    # bits the packed weight was not made with: the primitive's shape check, naming it.
    assert_raise Mx.Error, ~r/\[quantized_matmul\]/, fn ->
      QuantizedLinear.apply(q, Mx.ones({1, 64}), bits: 8) |> Mx.eval()
    end
  end

  test "Mx.NN.quantize: which layers, per-layer schemes, errors naming the layer" do
    layers = [
      {NN.Embedding, num_embeddings: 10, dims: 64},
      {NN.Linear, input_dims: 64, output_dims: 32},
      :relu,
      {NN.Linear, input_dims: 32, output_dims: 3, bias: false},
      {NN.LayerNorm, dims: 3}
    ]

    params = NN.Sequential.init(Mx.Random.key(9), layers: layers)
    tokens = Mx.tensor([[1, 2], [9, 0]])
    {qp, ql} = NN.quantize(params, layers, group_size: 32, bits: 8)

    assert Enum.map(ql, fn
             {m, _} -> m
             a -> a
           end) ==
             [QuantizedEmbedding, QuantizedLinear, :relu, QuantizedLinear, NN.LayerNorm]

    assert Enum.at(ql, 3) ==
             {QuantizedLinear,
              input_dims: 32, output_dims: 3, bias: false, group_size: 32, bits: 8}

    assert Enum.at(qp, 2) == %{} and bit_equal?(Enum.at(qp, 4).weight, Enum.at(params, 4).weight)
    assert NN.Sequential.apply(qp, tokens, layers: ql).shape == {2, 2, 3}

    # The same network built by hand from the layers' own functions: bit for bit.
    s = [group_size: 32, bits: 8]
    [e, l1, _, l2, norm] = params

    by_hand =
      QuantizedEmbedding.from_embedding(e, s)
      |> QuantizedEmbedding.apply(tokens, s)
      |> then(&QuantizedLinear.apply(QuantizedLinear.from_linear(l1, s), &1, s))
      |> NN.Activations.relu()
      |> then(&QuantizedLinear.apply(QuantizedLinear.from_linear(l2, s), &1, s))
      |> then(&NN.LayerNorm.apply(norm, &1, dims: 3))

    assert bit_equal?(NN.Sequential.apply(qp, tokens, layers: ql), by_hand)

    # The predicate sees [i] and the layer's params; it may skip a layer or give it its own scheme.
    {qp, ql} =
      NN.quantize(params, layers,
        class_predicate: fn
          [0], _ -> false
          [1], p -> elem(p.weight.shape, 1) == 64 and [group_size: 64, bits: 2]
          _, _ -> true
        end,
        group_size: 32
      )

    assert [NN.Embedding, QuantizedLinear, :relu, QuantizedLinear, NN.LayerNorm] ==
             Enum.map(ql, fn
               {m, _} -> m
               a -> a
             end)

    assert Keyword.take(elem(Enum.at(ql, 1), 1), [:group_size, :bits]) == [
             group_size: 64,
             bits: 2
           ]

    assert Keyword.take(elem(Enum.at(ql, 3), 1), [:group_size, :bits]) == [
             group_size: 32,
             bits: 4
           ]

    assert Enum.at(qp, 0) == Enum.at(params, 0)
    assert Enum.at(qp, 1).weight.shape == {32, 4}

    assert_raise ArgumentError,
                 ~r/^Mx.NN.quantize: layer \[3\] \(Mx.NN.Linear\): the weight \{3, 32\}'s last axis \(32\) is not a multiple of group_size 64/,
                 fn -> NN.quantize(params, layers) end

    assert_raise ArgumentError,
                 ~r/^Mx.NN.quantize: layer \[0\] \(Mx.NN.Embedding\): class_predicate must return/,
                 fn ->
                   NN.quantize(params, layers, class_predicate: fn _, _ -> :yes end)
                 end

    assert_raise ArgumentError,
                 ~r/^Mx.NN.quantize: layer \[1\] \(Mx.NN.Linear\): unknown option bit:/,
                 fn ->
                   NN.quantize(params, layers,
                     class_predicate: fn path, _ -> path == [1] and [bit: 4] end
                   )
                 end

    assert_raise ArgumentError, ~r/^Mx.NN.quantize: class_predicate must be a function/, fn ->
      NN.quantize(params, layers, class_predicate: true)
    end

    assert_raise ArgumentError, ~r/^Mx.NN.quantize: expected a Sequential's params/, fn ->
      NN.quantize(params, tl(layers))
    end
  end

  test "gradients flow to x and the bias; the quantized arrays are frozen (raise)" do
    lin = NN.Linear.init(Mx.Random.key(4), input_dims: 64, output_dims: 3)
    q = QuantizedLinear.from_linear(lin)
    x = Mx.Random.normal(Mx.Random.key(5), 0.0, 1.0, shape: {2, 64})
    frozen = Map.take(q, [:weight, :scales, :biases])
    f = fn bias, x -> QuantizedLinear.apply(Map.put(frozen, :bias, bias), x) |> Mx.sum() end

    # d/dbias of the sum over 2 rows is 2 per output; d/dx is the column sums of Ŵ, per row.
    [db, dx] = Mx.grad(f, [0, 1]).(q.bias, x)
    assert Mx.to_list(db) == [2.0, 2.0, 2.0]
    w = Mx.dequantize(q.weight, q.scales, q.biases)
    col = Mx.sum(w, axes: [0]) |> Mx.broadcast({2, 64})
    gap = Mx.subtract(dx, col) |> Mx.abs() |> max_of()
    # 3 terms each way, plus the dequantized weight's rounding, over the magnitudes |s|·q + |b|.
    a = Mx.dequantize(q.weight, Mx.abs(q.scales), Mx.abs(q.biases))
    assert gap <= 2 * gamma(3 + 2) * (a |> Mx.sum(axes: [0]) |> max_of())

    assert_raise Mx.Error, ~r/\[quantized_matmul\] has no gradient with respect to w_q/, fn ->
      Mx.grad(fn p -> QuantizedLinear.apply(p, x) |> Mx.sum() end).(q)
    end
  end

  test "count_params counts the stored arrays: packed words, scales and biases" do
    lin = NN.Linear.init(Mx.Random.key(0), input_dims: 128, output_dims: 16)
    assert NN.count_params(lin) == 16 * 128 + 16

    for {gs, bits} <- [{32, 2}, {64, 4}, {128, 8}] do
      q = QuantizedLinear.from_linear(lin, group_size: gs, bits: bits)
      words = div(16 * 128 * bits, 32)
      assert NN.count_params(q) == words + 2 * 16 * div(128, gs) + 16
    end
  end

  # A 64-32-4 MLP trained to imitate a random teacher, then quantized. Quantization moves the
  # weights by E = W - Ŵ (each element within |scale|/2 inside its group's range). Against the
  # exact dense net (h, z in f64), the quantized net as computed in f32 (ĥ, ẑ) satisfies
  #   |ĥ - h| ≤ |E₁x| + γ(k₁+2)(A₁|x| + |b₁|) =: d₁              (relu is 1-Lipschitz)
  #   |ẑ - z| ≤ |E₂h| + A₂d₁ + γ(k₂+2)(A₂(|h| + d₁) + |b₂|) =: d₂
  # with A = |s|·q + |b| ≥ |Ŵ| per element (what either quantized kernel multiplies) and k the
  # inner length; γ covers the products, the dequantized weight's rounding and the bias add.
  # An example with z_c - z_j > d₂_c + d₂_j for every j ≠ its label c keeps its class, so the
  # quantized accuracy is at least the fraction of those: that fraction is the threshold.
  @mlp [
    {NN.Linear, input_dims: 64, output_dims: 32},
    :relu,
    {NN.Linear, input_dims: 32, output_dims: 4}
  ]

  test "a trained MLP keeps every example the quantization error bound certifies" do
    [kt, kx, kp] = NN.split_keys(Mx.Random.key(2026), 3)
    x = Mx.Random.normal(kx, 0.0, 1.0, shape: {512, 64})
    teacher = NN.Sequential.init(kt, layers: @mlp)
    labels = NN.Sequential.apply(teacher, x, layers: @mlp) |> Mx.argmax(axis: 1)

    loss = fn p ->
      NN.Sequential.apply(p, x, layers: @mlp) |> NN.Losses.cross_entropy(labels) |> Mx.mean()
    end

    step = Mx.value_and_grad(loss)

    p =
      Enum.reduce(1..300, NN.Sequential.init(kp, layers: @mlp), fn _, p ->
        {_, g} = step.(p)

        Mx.Tree.zip_with([p, g], fn [w, dw] -> Mx.subtract(w, Mx.multiply(dw, 0.5)) end)
        |> Mx.eval()
      end)

    accuracy = fn p, layers ->
      NN.Sequential.apply(p, x, layers: layers)
      |> Mx.argmax(axis: 1)
      |> Mx.equal(labels)
      |> Mx.mean()
      |> Mx.to_number()
    end

    dense = accuracy.(p, @mlp)
    assert dense > 0.9, "the dense MLP learned too little to test anything: accuracy #{dense}"

    for bits <- [8, 4, 2] do
      scheme = [group_size: 32, bits: bits]
      {qp, ql} = NN.quantize(p, @mlp, scheme)
      certified = certified(p, qp, x, labels, scheme)
      quantized = accuracy.(qp, ql)

      # Every certified example is right in the quantized net (a stronger claim than the count).
      zq = NN.Sequential.apply(qp, x, layers: ql) |> Mx.argmax(axis: 1)
      kept = certified |> Mx.logical_and(Mx.not_equal(zq, labels)) |> Mx.any() |> Mx.to_number()
      refute kept, "bits #{bits}: a certified example changed class"
      threshold = certified |> Mx.as_type(:f32) |> Mx.mean() |> Mx.to_number()

      assert quantized >= threshold,
             "bits #{bits}: quantized accuracy #{quantized} below the certified #{threshold} (dense #{dense})"
    end
  end

  # Booleans {n}: right in the exact dense net by a margin beyond d₂ (see above).
  defp certified([l1, _, l2], [q1, _, q2], x, labels, scheme) do
    {x, b1, b2} = {f64(x), f64(l1.bias), f64(l2.bias)}
    t = &Mx.transpose/1
    h = Mx.matmul(x, t.(f64(l1.weight))) |> Mx.add(b1) |> NN.Activations.relu()
    z = Mx.matmul(h, t.(f64(l2.weight))) |> Mx.add(b2)

    [e1, e2] =
      for {l, q} <- [{l1, q1}, {l2, q2}],
          do: Mx.subtract(f64(l.weight), deq(q, scheme)) |> t.()

    [a1, a2] =
      for q <- [q1, q2],
          do: Mx.dequantize(q.weight, Mx.abs(q.scales), Mx.abs(q.biases), scheme) |> f64() |> t.()

    ax = Mx.abs(x)

    r1 = Mx.matmul(ax, a1) |> Mx.add(Mx.abs(b1))
    d1 = Mx.matmul(x, e1) |> Mx.abs() |> Mx.add(Mx.multiply(r1, gamma(64 + 2)))
    r2 = Mx.matmul(Mx.add(h, d1), a2) |> Mx.add(Mx.abs(b2))

    d2 =
      Mx.matmul(h, e2)
      |> Mx.abs()
      |> Mx.add(Mx.matmul(d1, a2))
      |> Mx.add(Mx.multiply(r2, gamma(32 + 2)))

    # margin_j = z_c - z_j - d2_c - d2_j > 0 for every j ≠ c.
    onehot = Mx.equal(Mx.reshape(labels, {:auto, 1}), Mx.iota({1, 4}, axis: 1))

    pick = fn a ->
      Mx.sum(Mx.multiply(a, Mx.as_type(onehot, :f64)), axes: [1], keep_axes: true)
    end

    margin = Mx.subtract(pick.(z), z) |> Mx.subtract(pick.(d2)) |> Mx.subtract(d2)
    Mx.all(Mx.logical_or(Mx.greater(margin, 0.0), onehot), axes: [1])
  end

  defp deq(q, scheme), do: Mx.dequantize(q.weight, q.scales, q.biases, scheme) |> f64()
end
