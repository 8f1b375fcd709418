defmodule Mx.NN.SdpaTest do
  use ExUnit.Case, async: true
  import Mx.GradCheck, only: [check_grads!: 2, random_f64: 2]
  alias Mx.NN
  alias Mx.ReferenceCase

  # Each case's tolerance is its aux bound from the rounding analysis (test/reference/generate_sdpa.py).
  defp assert_within!(name, got, want, bound) do
    got = Mx.to_flat_list(Mx.as_type(got, :f64))
    want = ReferenceCase.decode(want) |> Mx.to_flat_list()
    bound = ReferenceCase.decode(bound) |> Mx.to_flat_list()
    assert length(got) == length(want)

    for {{g, w, b}, i} <- Enum.with_index(Enum.zip([got, want, bound])) do
      if w == :nan do
        assert g == :nan, "#{name}: element #{i} is #{inspect(g)}, the reference is NaN"
      else
        assert is_float(g) and abs(g - w) <= b,
               "#{name}: element #{i} is #{inspect(g)}, the reference #{w}, bound #{b}"
      end
    end
  end

  defp inputs(c), do: Enum.map(c.args, &ReferenceCase.decode/1)
  defp opts(c), do: Enum.map(c.opts, fn {k, v} -> {k, ReferenceCase.decode(v)} end)

  for c <- ReferenceCase.load!(["sdpa"]) do
    @c c
    test "reference: #{c.name}" do
      [q, k, v] = inputs(@c)
      out = NN.scaled_dot_product_attention(q, k, v, opts(@c))
      assert Mx.type(out) == Mx.type(q)
      assert_within!(@c.name, out, @c.expected, @c.aux.bound)
    end

    if Map.has_key?(c.aux, :grads) do
      test "gradient against torch autograd: #{c.name}" do
        [q, k, v] = inputs(@c)
        o = opts(@c)
        f = fn q, k, v -> NN.scaled_dot_product_attention(q, k, v, o) end
        {_, grads} = Mx.vjp(f, [q, k, v], ReferenceCase.decode(@c.aux.cotangent))

        for {g, want, bound, what} <-
              Enum.zip([grads, @c.aux.grads, @c.aux.grad_bounds, [:q, :k, :v]]),
            do: assert_within!("#{@c.name} d#{what}", g, want, bound)
      end
    end
  end

  # f64 inputs in [-1, 1) (seeded) of the given shapes.
  defp qkv(shapes, seed), do: Enum.with_index(shapes, fn s, i -> random_f64(s, seed + i) end)

  describe "gradients by finite differences (f64)" do
    test "GQA, causal with Lq < Lk, Dv != D" do
      check_grads!(
        &NN.scaled_dot_product_attention(&1, &2, &3, mask: :causal),
        qkv([{1, 4, 3, 2}, {1, 2, 5, 2}, {1, 2, 5, 3}], 1)
      )
    end

    test "boolean and additive masks, a scale, rank 3" do
      bool = Mx.tensor([[true, false, true, true], [false, true, true, false]])
      add = Mx.tensor([[0.5, -1.0, 0.0, 2.0], [0.0, -0.5, 1.0, -2.0]], type: :f64)
      ins = qkv([{2, 2, 3}, {2, 4, 3}, {2, 4, 2}], 4)
      check_grads!(&NN.scaled_dot_product_attention(&1, &2, &3, mask: bool, scale: 0.8), ins)
      check_grads!(&NN.scaled_dot_product_attention(&1, &2, &3, mask: add), ins)
    end

    test "several query and key tiles (Lq 70, Lk 150), causal" do
      check_grads!(
        &NN.scaled_dot_product_attention(&1, &2, &3, mask: :causal),
        qkv([{1, 2, 70, 2}, {1, 1, 150, 2}, {1, 1, 150, 1}], 7)
      )
    end
  end

  test "jvp (the vjp of the backward primitive) agrees with the vjp: GQA with a boolean mask" do
    mask =
      Mx.less(random_f64({3, 5}, 70), 0.8) |> Mx.logical_or(Mx.tensor([[true, false, false, false, false]]))

    f = &NN.scaled_dot_product_attention(&1, &2, &3, mask: mask, scale: 0.9)
    Mx.GradCheck.check_vjp_jvp!(f, qkv([{2, 4, 3, 2}, {2, 1, 5, 2}, {2, 1, 5, 3}], 71))
  end

  test "a fully masked query row is NaN, and so are its dq row and its kv head's dk and dv" do
    [q, k, v] = qkv([{1, 1, 2, 2}, {1, 1, 3, 2}, {1, 1, 3, 2}], 10)
    mask = Mx.tensor([[false, false, false], [true, true, false]])
    out = NN.scaled_dot_product_attention(q, k, v, mask: mask)
    assert Mx.to_list(out[0][0][0]) == [:nan, :nan]
    assert Enum.all?(Mx.to_list(out[0][0][1]), &is_float/1)

    {_, [dq, dk, dv]} =
      Mx.vjp(
        &NN.scaled_dot_product_attention(&1, &2, &3, mask: mask),
        [q, k, v],
        Mx.ones({1, 1, 2, 2}, type: :f64)
      )

    assert Mx.to_list(dq[0][0][0]) == [:nan, :nan]
    assert Enum.all?(Mx.to_list(dq[0][0][1]), &is_float/1)
    assert Enum.all?(Mx.to_flat_list(dk) ++ Mx.to_flat_list(dv), &(&1 == :nan))
  end

  test "no keys at all (Lk = 0) gives the empty sum, 0" do
    out =
      NN.scaled_dot_product_attention(
        Mx.ones({1, 2, 3, 4}),
        Mx.ones({1, 2, 0, 4}),
        Mx.ones({1, 2, 0, 5})
      )

    assert Mx.shape(out) == {1, 2, 3, 5}
    assert Enum.all?(Mx.to_flat_list(out), &(&1 == 0.0))
  end

  test "grouped-query attention equals attention on repeated k and v" do
    [q, k, v] = qkv([{2, 6, 5, 4}, {2, 2, 7, 4}, {2, 2, 7, 3}], 20)

    rep = fn x ->
      x
      |> Mx.reshape({2, 2, 1, 7, elem(Mx.shape(x), 3)})
      |> Mx.broadcast({2, 2, 3, 7, elem(Mx.shape(x), 3)})
      |> Mx.reshape({2, 6, 7, elem(Mx.shape(x), 3)})
    end

    a = NN.scaled_dot_product_attention(q, k, v, mask: :causal)
    b = NN.scaled_dot_product_attention(q, rep.(k), rep.(v), mask: :causal)
    assert Mx.to_flat_list(a) == Mx.to_flat_list(b)
  end

  test "leading axes broadcast (a shared k and v)" do
    [q, k, v] = qkv([{3, 2, 4, 2}, {1, 2, 5, 2}, {1, 2, 5, 2}], 30)
    out = NN.scaled_dot_product_attention(q, k, v)
    assert Mx.shape(out) == {3, 2, 4, 2}

    for i <- 0..2,
        do:
          assert(
            Mx.to_list(out[i]) == Mx.to_list(NN.scaled_dot_product_attention(q[[i..i]], k, v)[0])
          )
  end

  test "lower-rank k and v get leading unit axes (one kv head shared by every query head)" do
    [q, k, v] = qkv([{2, 3, 4, 2}, {5, 2}, {5, 3}], 35)
    out = NN.scaled_dot_product_attention(q, k, v, mask: :causal)

    want =
      NN.scaled_dot_product_attention(q, Mx.reshape(k, {1, 1, 5, 2}), Mx.reshape(v, {1, 1, 5, 3}),
        mask: :causal
      )

    assert Mx.shape(out) == {2, 3, 4, 3}
    assert Mx.to_list(out) == Mx.to_list(want)
  end

  test "Mx.compile gives the uncompiled results, forward and gradient" do
    [q, k, v] = qkv([{1, 4, 9, 4}, {1, 2, 11, 4}, {1, 2, 11, 3}], 40)
    mask = Mx.less(random_f64({9, 11}, 44), 0.6)
    f = fn q, k, v -> NN.scaled_dot_product_attention(q, k, v, mask: mask) end
    loss = fn q, k, v -> Mx.sum(Mx.square(f.(q, k, v))) end
    g = Mx.grad(loss, [0, 1, 2])

    for fun <- [f, g] do
      want = apply(fun, [q, k, v]) |> Mx.Tree.leaves() |> Enum.map(&Mx.to_flat_list/1)
      got = apply(Mx.compile(fun), [q, k, v]) |> Mx.Tree.leaves() |> Enum.map(&Mx.to_flat_list/1)
      assert got == want
    end
  end

  test "vmap with unbatched k and v matches a loop" do
    [q, k, v] = qkv([{3, 2, 4, 2}, {1, 5, 2}, {1, 5, 3}], 50)
    f = fn q, k, v -> NN.scaled_dot_product_attention(q, k, v, mask: :causal) end
    got = Mx.vmap(f, [0, nil, nil]).(q, k, v) |> Mx.to_list()
    assert got == for(i <- 0..2, do: Mx.to_list(f.(q[i], k, v)))
  end

  test "vmap over the mask alone matches a loop" do
    [q, k, v] = qkv([{2, 4, 2}, {2, 5, 2}, {2, 5, 3}], 55)
    masks = Mx.less(random_f64({3, 4, 5}, 57), 0.7)
    f = fn m, q, k, v -> NN.scaled_dot_product_attention(q, k, v, mask: m) end
    got = Mx.vmap(f, [0, nil, nil, nil]).(masks, q, k, v) |> Mx.to_list()
    assert got == for(i <- 0..2, do: Mx.to_list(f.(masks[i], q, k, v)))
  end

  describe "errors name the op and the shapes" do
    test "mismatched shapes" do
      a = Mx.ones({1, 2, 3, 4})

      assert_raise Mx.Error,
                   ~r/\[scaled_dot_product_attention\] shapes do not fit: q f32\[1\]\[2\]\[3\]\[4\], k f32\[1\]\[2\]\[3\]\[5\]/,
                   fn ->
                     NN.scaled_dot_product_attention(a, Mx.ones({1, 2, 3, 5}), a)
                   end

      assert_raise Mx.Error, ~r/Hq a multiple of Hkv/, fn ->
        NN.scaled_dot_product_attention(Mx.ones({1, 3, 3, 4}), a, a)
      end

      assert_raise Mx.Error, ~r/shapes do not fit.*v f32\[1\]\[2\]\[4\]\[4\]/, fn ->
        NN.scaled_dot_product_attention(a, a, Mx.ones({1, 2, 4, 4}))
      end

      assert_raise Mx.Error,
                   ~r/k f32\[4\] and v f32\[1\]\[2\]\[3\]\[4\] must have rank >= 2/,
                   fn ->
                     NN.scaled_dot_product_attention(a, Mx.ones({4}), a)
                   end

      assert_raise Mx.Error,
                   ~r/mask bool\[2\]\[2\] does not broadcast to the scores' shape \[1\]\[2\]\[3\]\[3\]/,
                   fn ->
                     NN.scaled_dot_product_attention(a, a, a,
                       mask: Mx.tensor([[true, false], [true, true]])
                     )
                   end
    end

    test "mismatched or unsupported dtypes" do
      a = Mx.ones({2, 3, 4})

      assert_raise Mx.Error,
                   ~r/\[scaled_dot_product_attention\] q f32\[2\]\[3\]\[4\], k f64\[2\]\[3\]\[4\] and v f32\[2\]\[3\]\[4\] must share one float dtype/,
                   fn ->
                     NN.scaled_dot_product_attention(a, Mx.ones({2, 3, 4}, type: :f64), a)
                   end

      assert_raise Mx.Error, ~r/must share one float dtype/, fn ->
        i = Mx.ones({2, 3, 4}, type: :s32)
        NN.scaled_dot_product_attention(i, i, i)
      end

      assert_raise Mx.Error, ~r/mask s32\[3\]\[3\] must be boolean/, fn ->
        NN.scaled_dot_product_attention(a, a, a, mask: Mx.ones({3, 3}, type: :s32))
      end
    end

    test "options" do
      a = Mx.ones({2, 3, 4})

      assert_raise ArgumentError, ~r/scale must be a number/, fn ->
        NN.scaled_dot_product_attention(a, a, a, scale: :x)
      end

      assert_raise ArgumentError, ~r/unknown option|:foo/, fn ->
        NN.scaled_dot_product_attention(a, a, a, foo: 1)
      end
    end

    test "a mask that needs a gradient raises; so do second derivatives in q, k, v" do
      [q, k, v] = qkv([{1, 2, 3}, {1, 4, 3}, {1, 4, 3}], 60)
      m = random_f64({2, 4}, 64)

      assert_raise Mx.Error, ~r/no gradient with respect to the mask/, fn ->
        Mx.grad(fn m -> Mx.sum(NN.scaled_dot_product_attention(q, k, v, mask: m)) end).(m)
      end

      # stop_gradient makes it a constant
      g =
        Mx.grad(fn q ->
          Mx.sum(NN.scaled_dot_product_attention(q, k, v, mask: Mx.stop_gradient(m)))
        end).(q)

      assert Mx.shape(g) == {1, 2, 3}

      assert_raise Mx.Error,
                   ~r/\[scaled_dot_product_attention_vjp\] has no second derivatives/,
                   fn ->
                     inner =
                       Mx.grad(fn q ->
                         Mx.sum(Mx.square(NN.scaled_dot_product_attention(q, k, v)))
                       end)

                     Mx.grad(fn q -> Mx.sum(inner.(q)) end).(q)
                   end
    end
  end
end
