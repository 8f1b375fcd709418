defmodule Mx.NN.LayersTest do
  # Gradients by finite differences, dropout and initializer statistics, state, freezing, errors.
  use ExUnit.Case, async: true
  import Mx.GradCheck, only: [check_grads!: 2, random_f64: 2, random_f64: 4]

  alias Mx.NN

  describe "gradients (central differences in f64, Mx.GradCheck)" do
    test "Linear: weight, bias and input" do
      f = fn w, b, x -> NN.Linear.apply(%{weight: w, bias: b}, x) end
      check_grads!(f, [random_f64({3, 4}, 1), random_f64({3}, 2), random_f64({2, 4}, 3)])
    end

    test "Bilinear" do
      f = fn w, x1, x2 -> NN.Bilinear.apply(%{weight: w}, {x1, x2}) end
      check_grads!(f, [random_f64({2, 3, 4}, 4), random_f64({5, 3}, 5), random_f64({5, 4}, 6)])
    end

    test "LayerNorm, RMSNorm and GroupNorm" do
      x = random_f64({2, 3, 4}, 7)

      check_grads!(fn w, b, x -> NN.LayerNorm.apply(%{weight: w, bias: b}, x) end, [
        random_f64({4}, 8),
        random_f64({4}, 9),
        x
      ])

      check_grads!(fn w, x -> NN.RMSNorm.apply(%{weight: w}, x) end, [random_f64({4}, 10), x])

      check_grads!(fn x -> NN.GroupNorm.apply(%{}, x, num_groups: 2, affine: false) end, [
        random_f64({2, 3, 4}, 11)
      ])
    end

    test "BatchNorm in training (batch statistics)" do
      f = fn w, b, x ->
        p = %{
          weight: w,
          bias: b,
          running_mean: Mx.zeros({3}, type: :f64),
          running_var: Mx.ones({3}, type: :f64)
        }

        {y, _} = NN.BatchNorm.apply(p, x, mode: :train)
        y
      end

      check_grads!(f, [random_f64({3}, 12), random_f64({3}, 13), random_f64({4, 3}, 14)])
    end

    test "GRU and LSTM through time" do
      x = random_f64({2, 3, 2}, 15)

      gru = fn wx, wh, x ->
        NN.GRU.apply(
          %{Wx: wx, Wh: wh, b: Mx.zeros({9}, type: :f64), bhn: Mx.ones({3}, type: :f64)},
          x
        )
      end

      check_grads!(gru, [random_f64({9, 2}, 16), random_f64({9, 3}, 17), x])

      lstm = fn wx, wh, x ->
        {h, c} = NN.LSTM.apply(%{Wx: wx, Wh: wh}, x)
        Mx.add(h, Mx.multiply(c, 0.5))
      end

      check_grads!(lstm, [random_f64({12, 2}, 18), random_f64({12, 3}, 19), x])
    end

    test "MultiHeadAttention with a causal mask, and RoPE" do
      p = NN.MultiHeadAttention.init(Mx.Random.key(3), dims: 4, num_heads: 2, type: :f64)

      f = fn wq, wk, x ->
        p = %{p | query_proj: %{weight: wq}, key_proj: %{weight: wk}}
        NN.MultiHeadAttention.apply(p, x, num_heads: 2, mask: :causal)
      end

      check_grads!(f, [random_f64({4, 4}, 20), random_f64({4, 4}, 21), random_f64({1, 3, 4}, 22)])

      check_grads!(fn x -> NN.RoPE.apply(%{}, x, dims: 4, traditional: true) end, [
        random_f64({2, 3, 6}, 23)
      ])
    end

    test "TransformerDecoderLayer (post-norm, gelu, causal) through x and memory" do
      p =
        NN.TransformerDecoderLayer.init(Mx.Random.key(4),
          dims: 4,
          num_heads: 2,
          mlp_dims: 8,
          bias: true,
          type: :f64
        )

      opts = [num_heads: 2, norm_first: false, activation: :gelu, mask: :causal]
      f = fn x, mem -> NN.TransformerDecoderLayer.apply(p, {x, mem}, opts) end
      check_grads!(f, [random_f64({1, 3, 4}, 32), random_f64({1, 2, 4}, 33)])
    end

    test "cross_entropy with label smoothing, binary_cross_entropy, huber_loss" do
      targets = Mx.tensor([0, 2, 1])

      check_grads!(fn l -> NN.Losses.cross_entropy(l, targets, label_smoothing: 0.1) end, [
        random_f64({3, 4}, 24)
      ])

      t = random_f64({3, 4}, 25, 0.0, 1.0)

      check_grads!(fn x -> NN.Losses.binary_cross_entropy(x, t, reduction: :none) end, [
        random_f64({3, 4}, 26, -3.0, 3.0)
      ])

      check_grads!(fn x, y -> NN.Losses.huber_loss(x, y, delta: 0.5) end, [
        random_f64({5}, 27),
        random_f64({5}, 28)
      ])
    end

    test "activations with kinks and saturations: elu, celu, mish, gelu_approx, log_sigmoid, softmin, glu, selu" do
      x = random_f64({3, 6}, 29, -3.0, 3.0)

      for f <-
            [
              &NN.Activations.elu/1,
              &NN.Activations.celu/1,
              &NN.Activations.mish/1,
              &NN.Activations.gelu_approx/1
            ] ++
              [
                &NN.Activations.log_sigmoid/1,
                &NN.Activations.softmin/1,
                &NN.Activations.glu/1,
                &NN.Activations.selu/1
              ],
          do: check_grads!(f, [x])
    end

    test "Embedding (repeated indices accumulate) and SinusoidalPositionalEncoding" do
      idx = Mx.tensor([[1, 0, 1], [2, 1, 1]])
      check_grads!(fn w -> NN.Embedding.apply(%{weight: w}, idx) end, [random_f64({3, 4}, 30)])

      check_grads!(fn x -> NN.SinusoidalPositionalEncoding.apply(%{}, x, dims: 6) end, [
        random_f64({2, 3}, 31)
      ])
    end

    test "elu's gradient stays finite for inputs where exp overflows" do
      g = Mx.grad(fn x -> Mx.sum(NN.Activations.elu(x)) end).(Mx.tensor([100.0, 1000.0, -1.0]))
      assert Mx.to_list(g) |> Enum.take(2) == [1.0, 1.0]
    end
  end

  describe "dropout" do
    # The fraction of dropped elements (or channels) is within 4 standard errors of the rate.
    defp assert_rate(zeros, n, rate) do
      se = :math.sqrt(rate * (1 - rate) / n)

      assert abs(zeros / n - rate) <= 4 * se,
             "dropped #{zeros}/#{n}, rate #{rate} (4 SE = #{4 * se})"
    end

    test "Dropout drops at the rate and scales the rest by 1/(1 - rate)" do
      y =
        NN.Dropout.apply(%{}, Mx.ones({100, 200}), mode: :train, key: Mx.Random.key(11), rate: 0.3)

      vals = Mx.to_flat_list(y)
      zeros = Enum.count(vals, &(&1 == 0.0))
      assert_rate(zeros, 20_000, 0.3)
      assert Enum.all?(vals, &(&1 == 0.0 or abs(&1 - 1 / 0.7) < 1.0e-6))
      # Another key, another mask; the same key, the same mask.
      y2 =
        NN.Dropout.apply(%{}, Mx.ones({100, 200}), mode: :train, key: Mx.Random.key(12), rate: 0.3)

      refute Mx.to_flat_list(y2) == vals

      assert Mx.to_flat_list(
               NN.Dropout.apply(%{}, Mx.ones({100, 200}),
                 mode: :train,
                 key: Mx.Random.key(11),
                 rate: 0.3
               )
             ) == vals
    end

    test "Dropout2d and Dropout3d drop whole channels" do
      for {mod, shape} <- [{NN.Dropout2d, {50, 3, 4, 40}}, {NN.Dropout3d, {50, 2, 3, 2, 40}}] do
        y = mod.apply(%{}, Mx.ones(shape), mode: :train, key: Mx.Random.key(13), rate: 0.4)
        r = tuple_size(shape)
        spatial = Enum.to_list(1..(r - 2))
        mx = Mx.reduce_max(y, axes: spatial) |> Mx.to_flat_list()
        mn = Mx.reduce_min(y, axes: spatial) |> Mx.to_flat_list()
        # Every channel of every example is all zero or all 1/(1 - rate).
        assert mx == mn
        assert_rate(Enum.count(mx, &(&1 == 0.0)), 50 * 40, 0.4)
      end
    end

    test "eval mode is the identity; training needs a key; rate must be in [0, 1)" do
      x = Mx.tensor([1.0, 2.0])
      assert NN.Dropout.apply(%{}, x, rate: 0.9) == x
      assert_raise ArgumentError, ~r/needs key:/, fn -> NN.Dropout.apply(%{}, x, mode: :train) end

      assert_raise ArgumentError, ~r/rate must be in \[0, 1\)/, fn ->
        NN.Dropout.apply(%{}, x, rate: 1.0)
      end

      assert_raise ArgumentError, ~r/mode must be :train or :eval/, fn ->
        NN.Dropout.apply(%{}, x, mode: :training)
      end
    end
  end

  describe "initializers (fixed keys, 4 standard errors)" do
    @n {200, 300}

    # Sample mean and variance of x against the true ones, with the variance's standard error
    # from the fourth central moment: Var(s²) ≈ (μ₄ - σ⁴)/n.
    defp assert_moments(x, mean, var, mu4) do
      n = Mx.size(x)
      m = Mx.mean(x) |> Mx.to_number()
      v = x |> Mx.subtract(m) |> Mx.square() |> Mx.mean() |> Mx.to_number()
      assert abs(m - mean) <= 4 * :math.sqrt(var / n), "mean #{m}, expected #{mean}"

      assert abs(v - var) <= 4 * :math.sqrt((mu4 - var * var) / n),
             "variance #{v}, expected #{var}"
    end

    defp normal_moments(x, mean, std),
      do: assert_moments(x, mean, std * std, 3 * :math.pow(std, 4))

    defp uniform_moments(x, lo, hi),
      do: assert_moments(x, (lo + hi) / 2, :math.pow(hi - lo, 2) / 12, :math.pow(hi - lo, 4) / 80)

    test "normal and uniform" do
      normal_moments(
        NN.Init.normal(Mx.Random.key(1), @n, mean: 0.5, std: 2.0, type: :f64),
        0.5,
        2.0
      )

      uniform_moments(
        NN.Init.uniform(Mx.Random.key(2), @n, low: -1.0, high: 3.0, type: :f64),
        -1.0,
        3.0
      )

      assert NN.Init.normal(Mx.Random.key(1), {2}).type == :f32
    end

    test "glorot_normal and glorot_uniform: Var = 2 gain² / (fan_in + fan_out)" do
      normal_moments(
        NN.Init.glorot_normal(Mx.Random.key(3), @n, type: :f64),
        0.0,
        :math.sqrt(2 / 500)
      )

      l = 2.0 * :math.sqrt(6 / 500)
      uniform_moments(NN.Init.glorot_uniform(Mx.Random.key(4), @n, gain: 2.0, type: :f64), -l, l)
    end

    test "he_normal and he_uniform by fan_in and fan_out" do
      normal_moments(
        NN.Init.he_normal(Mx.Random.key(5), @n, type: :f64),
        0.0,
        1 / :math.sqrt(300)
      )

      normal_moments(
        NN.Init.he_normal(Mx.Random.key(6), @n, mode: :fan_out, gain: 2.0, type: :f64),
        0.0,
        2 / :math.sqrt(200)
      )

      l = :math.sqrt(3 / 300)
      uniform_moments(NN.Init.he_uniform(Mx.Random.key(7), @n, type: :f64), -l, l)
      assert NN.Init.fans({8, 5, 5, 3}) == {75, 200}
    end

    test "orthogonal: orthonormal rows or columns times gain; entries mean 0, variance 1/n" do
      for {shape, gram} <- [{{4, 7}, :rows}, {{7, 4}, :cols}] do
        q = NN.Init.orthogonal(Mx.Random.key(8), shape, gain: 3.0, type: :f64)

        g =
          if gram == :rows, do: Mx.matmul(q, Mx.transpose(q)), else: Mx.matmul(Mx.transpose(q), q)

        err =
          g
          |> Mx.subtract(Mx.multiply(Mx.eye(4, type: :f64), 9.0))
          |> Mx.abs()
          |> Mx.reduce_max()
          |> Mx.to_number()

        assert err < 1.0e-12
      end

      # Entries of a Haar-random orthogonal n×n matrix are ≈ N(0, 1/n) for large n.
      q = NN.Init.orthogonal(Mx.Random.key(9), {150, 150}, type: :f64)
      normal_moments(q, 0.0, 1 / :math.sqrt(150))
    end

    test "sparse: exactly ceil(sparsity · rows) zeros per column, the rest normal" do
      w = NN.Init.sparse(Mx.Random.key(10), {300, 200}, sparsity: 0.25, std: 2.0, type: :f64)
      assert Mx.equal(w, 0) |> Mx.sum(axes: [0]) |> Mx.to_list() |> Enum.uniq() == [75]
      nonzero = w |> Mx.to_flat_list() |> Enum.reject(&(&1 == 0.0)) |> Mx.tensor(type: :f64)
      normal_moments(nonzero, 0.0, 2.0)
      # The zero rows differ between columns (a permutation per column, not one shared row set).
      assert Mx.equal(w, 0) |> Mx.all(axes: [1]) |> Mx.any() |> Mx.to_number() == false
    end

    test "constant and identity; errors" do
      assert NN.Init.constant({2, 2}, 3, type: :f64) |> Mx.to_list() == [[3.0, 3.0], [3.0, 3.0]]
      assert NN.Init.identity({3, 3}) |> Mx.to_list() == Mx.eye(3) |> Mx.to_list()
      assert_raise ArgumentError, ~r/square/, fn -> NN.Init.identity({2, 3}) end

      assert_raise ArgumentError, ~r/mode must be :fan_in or :fan_out/, fn ->
        NN.Init.he_normal(Mx.Random.key(0), {2, 2}, mode: :avg)
      end

      assert_raise ArgumentError, ~r/rank >= 2/, fn ->
        NN.Init.glorot_normal(Mx.Random.key(0), {3})
      end

      assert_raise ArgumentError, ~r/sparsity/, fn -> NN.Init.sparse(Mx.Random.key(0), {3, 3}) end
    end
  end

  describe "layers: init, state, composition, freezing" do
    test "init shapes and MLX's default scales" do
      p = NN.Linear.init(Mx.Random.key(0), input_dims: 100, output_dims: 50)
      assert {Mx.shape(p.weight), Mx.shape(p.bias)} == {{50, 100}, {50}}
      assert Mx.reduce_max(Mx.abs(p.weight)) |> Mx.to_number() <= 0.1

      refute Map.has_key?(
               NN.Linear.init(Mx.Random.key(0), input_dims: 2, output_dims: 2, bias: false),
               :bias
             )

      l = NN.LSTM.init(Mx.Random.key(1), input_dims: 3, hidden_dims: 5, type: :f64)

      assert {Mx.shape(l[:Wx]), Mx.shape(l[:Wh]), Mx.shape(l[:bias]), Mx.type(l[:Wx])} ==
               {{20, 3}, {20, 5}, {20}, :f64}

      g = NN.GRU.init(Mx.Random.key(1), input_dims: 3, hidden_dims: 5)
      assert Enum.map([:Wx, :Wh, :b, :bhn], &Mx.shape(g[&1])) == [{15, 3}, {15, 5}, {15}, {5}]
      e = NN.TransformerEncoderLayer.init(Mx.Random.key(2), dims: 8, num_heads: 2, mlp_dims: 16)
      assert NN.count_params(e) == 4 * 8 * 8 + 2 * 16 + (8 * 16 + 16) + (16 * 8 + 8)
    end

    test "recurrent layers take unbatched sequences too" do
      p = NN.RNN.init(Mx.Random.key(0), input_dims: 3, hidden_dims: 4)
      x = Mx.Random.normal(Mx.Random.key(1), shape: {5, 3})
      assert Mx.shape(NN.RNN.apply(p, x)) == {5, 4}
      batched = NN.RNN.apply(p, Mx.reshape(x, {1, 5, 3})) |> Mx.reshape({5, 4})
      assert Mx.to_list(batched) == Mx.to_list(NN.RNN.apply(p, x))
    end

    test "BatchNorm: training returns updated statistics, eval uses them" do
      p = NN.BatchNorm.init(Mx.Random.key(0), num_features: 2)
      x = Mx.tensor([[1.0, 10.0], [3.0, 20.0], [5.0, 30.0]])
      {_y, p2} = NN.BatchNorm.apply(p, x, mode: :train, momentum: 0.5)
      assert Mx.to_list(p2.running_mean) == [1.5, 10.0]
      # Unbiased batch variance [4, 100] mixed half and half with the initial 1.
      assert Mx.to_list(p2.running_var) == [2.5, 50.5]
      y = NN.BatchNorm.apply(p2, x, eps: 0.0)
      assert_in_delta Mx.to_number(y[0][0]), (1.0 - 1.5) / :math.sqrt(2.5), 1.0e-6
    end

    test "Sequential returns {output, params} in training, threading BatchNorm's state and dropout keys" do
      layers = [
        {NN.Linear, input_dims: 3, output_dims: 4},
        {NN.BatchNorm, num_features: 4},
        :relu,
        {NN.Dropout, rate: 0.5},
        &Mx.negate/1
      ]

      p = NN.Sequential.init(Mx.Random.key(0), layers: layers)
      assert length(p) == 5 and Enum.at(p, 2) == %{}
      x = Mx.Random.normal(Mx.Random.key(1), shape: {6, 3})
      {y, p2} = NN.Sequential.apply(p, x, layers: layers, mode: :train, key: Mx.Random.key(2))
      assert Mx.shape(y) == {6, 4}
      refute Mx.to_list(Enum.at(p2, 1).running_mean) == Mx.to_list(Enum.at(p, 1).running_mean)
      assert Enum.at(p2, 0) == Enum.at(p, 0)
      assert Mx.shape(NN.Sequential.apply(p2, x, layers: layers)) == {6, 4}
    end

    test "freezing by path: gradients zeroed, counts of trainable parameters" do
      layers = [
        {NN.Linear, input_dims: 2, output_dims: 3},
        :tanh,
        {NN.Linear, input_dims: 3, output_dims: 1}
      ]

      p = NN.Sequential.init(Mx.Random.key(0), layers: layers)
      assert NN.count_params(p) == 9 + 4
      assert NN.count_params(p, frozen: [[0]]) == 4
      loss = fn p -> NN.Sequential.apply(p, Mx.ones({4, 2}), layers: layers) |> Mx.sum() end
      g = Mx.grad(loss).(p) |> NN.freeze_gradients([[0]])
      assert Mx.to_list(Mx.sum(Mx.abs(Enum.at(g, 0).weight))) == 0.0
      assert Mx.to_number(Mx.sum(Mx.abs(Enum.at(g, 2).weight))) > 0

      assert_raise ArgumentError, ~r/frozen paths must be lists/, fn ->
        NN.freeze_gradients(g, [:weight])
      end
    end

    test "errors name the function and the fix" do
      assert_raise ArgumentError,
                   ~r/Mx.NN.Linear.init: the option output_dims: is required/,
                   fn ->
                     NN.Linear.init(Mx.Random.key(0), input_dims: 2)
                   end

      assert_raise ArgumentError, ~r/Mx.NN.Linear.apply: unknown option eps:/, fn ->
        NN.Linear.apply(%{}, Mx.ones({1}), eps: 1)
      end

      assert_raise ArgumentError, ~r/neither a layer module nor an activation/, fn ->
        NN.Sequential.init(Mx.Random.key(0), layers: [:nope])
      end

      assert_raise ArgumentError, ~r/takes no options/, fn ->
        NN.Sequential.apply([%{}], Mx.ones({1}), layers: [{:relu, alpha: 1}])
      end

      assert_raise ArgumentError, ~r/one entry per layer/, fn ->
        NN.Sequential.apply([], Mx.ones({1}), layers: [:relu])
      end

      assert_raise ArgumentError, ~r/label_smoothing must be in/, fn ->
        NN.Losses.cross_entropy(Mx.ones({2, 2}), Mx.tensor([0, 1]), label_smoothing: 1.0)
      end

      assert_raise ArgumentError, ~r/class indices/, fn ->
        NN.Losses.cross_entropy(Mx.ones({2, 2}), Mx.tensor([0.0, 1.0]))
      end

      assert_raise ArgumentError, ~r/reduction must be :none, :mean or :sum/, fn ->
        NN.Losses.mse_loss(Mx.ones({2}), Mx.ones({2}), reduction: :avg)
      end

      assert_raise ArgumentError, ~r/dims \(5\) must be even/, fn ->
        NN.RoPE.apply(%{}, Mx.ones({2, 6}), dims: 5)
      end

      assert_raise ArgumentError, ~r/divisible by num_heads/, fn ->
        NN.MultiHeadAttention.init(Mx.Random.key(0), dims: 6, num_heads: 4)
      end

      assert_raise ArgumentError, ~r/mask must be nil, :causal/, fn ->
        NN.scaled_dot_product_attention(Mx.ones({1, 2}), Mx.ones({1, 2}), Mx.ones({1, 2}),
          mask: :full
        )
      end

      assert_raise ArgumentError, ~r/must have even size/, fn ->
        NN.Activations.glu(Mx.ones({3}))
      end
    end

    test "layers run under Mx.compile with the uncompiled results (dropout keys are inputs)" do
      x = Mx.Random.normal(Mx.Random.key(1), shape: {2, 3, 8})
      enc = NN.TransformerEncoderLayer.init(Mx.Random.key(2), dims: 8, num_heads: 2, dropout: 0.1)

      f = fn p, x, k ->
        NN.TransformerEncoderLayer.apply(p, x,
          num_heads: 2,
          dropout: 0.1,
          mode: :train,
          key: k,
          mask: :causal
        )
      end

      lstm = NN.LSTM.init(Mx.Random.key(3), input_dims: 8, hidden_dims: 4)
      g = fn p, x -> NN.LSTM.apply(p, x) end

      for {fun, args} <- [{f, [enc, x, Mx.Random.key(4)]}, {g, [lstm, x]}] do
        want = apply(fun, args) |> Mx.Tree.leaves() |> Enum.map(&Mx.to_flat_list/1)
        compiled = Mx.compile(fun)
        got = apply(compiled, args) |> Mx.Tree.leaves() |> Enum.map(&Mx.to_flat_list/1)

        for {a, b} <- Enum.zip(List.flatten(got), List.flatten(want)),
            do: assert(abs(a - b) <= 1.0e-5 * (1 + abs(b)))
      end

      # Another key, another dropout mask, through the same compiled tape.
      c = Mx.compile(f)

      refute Mx.to_flat_list(c.(enc, x, Mx.Random.key(5))) ==
               Mx.to_flat_list(c.(enc, x, Mx.Random.key(4)))
    end

    test "ALiBi adds mask: too" do
      s = Mx.zeros({1, 2, 2, 2})
      m = Mx.tensor([[0.0, :neg_infinity], [0.0, 0.0]])
      out = NN.ALiBi.apply(%{}, s, mask: m)
      assert Mx.to_list(out[0][1]) == [[0.0, :neg_infinity], [-1 / 256, 0.0]]
    end

    test "scaled_dot_product_attention: a fully masked-out key gets no weight; causal with more keys than queries" do
      q = Mx.Random.normal(Mx.Random.key(0), shape: {2, 3, 4})
      k = Mx.Random.normal(Mx.Random.key(1), shape: {2, 5, 4})
      v = Mx.Random.normal(Mx.Random.key(2), shape: {2, 5, 4})

      # Query i sees keys 0..i+2: the last query sees all five keys, so it equals unmasked attention.
      causal = NN.scaled_dot_product_attention(q, k, v, mask: :causal)
      full = NN.scaled_dot_product_attention(q, k, v)

      assert_in_delta Mx.to_number(Mx.sum(Mx.abs(Mx.subtract(causal[[.., 2]], full[[.., 2]])))),
                      0.0,
                      1.0e-5

      # Changing a value the first query cannot see leaves its output unchanged.
      v2 = Mx.add(v, Mx.multiply(Mx.greater_equal(Mx.reshape(Mx.iota({5}), {1, 5, 1}), 3), 100.0))
      a = NN.scaled_dot_product_attention(q, k, v2, mask: :causal)

      assert_in_delta Mx.to_number(Mx.sum(Mx.abs(Mx.subtract(a[[.., 0]], causal[[.., 0]])))),
                      0.0,
                      1.0e-5
    end
  end
end
