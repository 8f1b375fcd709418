defmodule Gen.OptimTest do
  use ExUnit.Case, async: true
  alias Gen.Optim

  doctest Gen.Optim

  defp f64(x), do: Mx.tensor(x, type: :f64)
  defp num(x), do: Mx.to_number(x)

  describe "one step against the closed-form update" do
    test "sgd: plain, momentum, and descent" do
      p = %{a: f64(1.0), b: [f64([2.0, -1.0])]}
      g1 = %{a: f64(0.5), b: [f64([-2.0, 4.0])]}
      g2 = %{a: f64(-1.0), b: [f64([1.0, 1.0])]}

      opt = Optim.sgd(learning_rate: 0.1)
      {p1, _} = Optim.update(opt, Optim.init(opt, p), p, g1)
      assert num(p1.a) == 1.0 + 0.1 * 0.5
      assert Mx.to_list(hd(p1.b)) == [2.0 + 0.1 * -2.0, -1.0 + 0.1 * 4.0]

      # heavy ball: v1 = g1, v2 = μ g1 + g2, θ2 = θ0 + η v1 + η v2
      opt = Optim.sgd(learning_rate: 0.1, momentum: 0.9)
      {p1, s1} = Optim.update(opt, Optim.init(opt, p), p, g1)
      {p2, s2} = Optim.update(opt, s1, p1, g2)
      assert s2.step == 2
      assert_in_delta num(p2.a), 1.0 + 0.1 * 0.5 + 0.1 * (0.9 * 0.5 - 1.0), 1.0e-15
      [b0, b1] = Mx.to_list(hd(p2.b))
      assert_in_delta b0, 2.0 + 0.1 * -2.0 + 0.1 * (0.9 * -2.0 + 1.0), 1.0e-15
      assert_in_delta b1, -1.0 + 0.1 * 4.0 + 0.1 * (0.9 * 4.0 + 1.0), 1.0e-15

      opt = Optim.sgd(learning_rate: 0.1, maximize: false)
      {p1, _} = Optim.update(opt, Optim.init(opt, p), p, g1)
      assert num(p1.a) == 1.0 - 0.1 * 0.5
    end

    test "adam: two bias-corrected steps" do
      {lr, b1, b2, eps} = {0.05, 0.8, 0.9, 1.0e-3}
      opt = Optim.adam(learning_rate: lr, beta1: b1, beta2: b2, eps: eps)
      p = %{x: f64([1.0, -2.0])}
      gs = [[0.3, -4.0], [1.5, 2.0]]

      {pf, _} =
        Enum.reduce(gs, {p, Optim.init(opt, p)}, fn g, {p, st} -> Optim.update(opt, st, p, %{x: f64(g)}) end)

      # The same recursion in Elixir floats, coordinate by coordinate.
      expected =
        for {x0, j} <- Enum.with_index([1.0, -2.0]) do
          {x, _, _} =
            gs
            |> Enum.with_index(1)
            |> Enum.reduce({x0, 0.0, 0.0}, fn {g, t}, {x, m, v} ->
              gj = Enum.at(g, j)
              m = b1 * m + (1 - b1) * gj
              v = b2 * v + (1 - b2) * gj * gj
              mh = m / (1 - :math.pow(b1, t))
              vh = v / (1 - :math.pow(b2, t))
              {x + lr * mh / (:math.sqrt(vh) + eps), m, v}
            end)

          x
        end

      Enum.zip(Mx.to_list(pf.x), expected) |> Enum.each(fn {a, e} -> assert_in_delta a, e, 1.0e-14 end)

      {pd, _} = Optim.update(%{opt | maximize: false}, Optim.init(opt, p), p, %{x: f64([0.3, -4.0])})
      # first step: m̂ = g, v̂ = g², so the move is -η g/(|g| + ε)
      assert_in_delta hd(Mx.to_list(pd.x)), 1.0 - lr * 0.3 / (0.3 + eps), 1.0e-14
    end

    test "a learning-rate schedule is called with the step number" do
      opt = Optim.sgd(learning_rate: fn t -> 1.0 / t end)
      p = f64(0.0)
      g = f64(1.0)
      {p1, s1} = Optim.update(opt, Optim.init(opt, p), p, g)
      {p2, _} = Optim.update(opt, s1, p1, g)
      # steps of 1/1 then 1/2
      assert num(p2) == 1.5

      opt = Optim.adam(learning_rate: fn t -> 0.1 * t end)
      {p1, s1} = Optim.update(opt, Optim.init(opt, p), p, g)
      {p2, _} = Optim.update(opt, s1, p1, g)
      # a constant gradient makes m̂/(√v̂ + ε) = 1/(1 + 1e-8) at every step: moves of 0.1 and 0.2
      assert_in_delta num(p2), 0.3 / (1 + 1.0e-8), 1.0e-14

      bad = Optim.sgd(learning_rate: fn _ -> -1.0 end)
      assert_raise ArgumentError, ~r/schedule returned -1.0 at step 1/, fn -> Optim.update(bad, Optim.init(bad, p), p, g) end
    end

    test "f32 parameters stay f32" do
      opt = Optim.adam(learning_rate: 0.1)
      p = Mx.tensor([1.0, 2.0])
      {p1, _} = Optim.update(opt, Optim.init(opt, p), p, Mx.tensor([1.0, 1.0], type: :f64))
      assert Mx.type(p1) == :f32
    end
  end

  describe "convergence on a quadratic" do
    # maximise -½ Σ λⱼ (xⱼ - cⱼ)², λ = (1, 10), c = (3, -2), from x = 0.
    @lambda [1.0, 10.0]
    @c [3.0, -2.0]
    defp objective(p, _i) do
      d = Mx.subtract(p.x, f64(@c))
      Mx.multiply(Mx.sum(Mx.multiply(f64(@lambda), Mx.square(d))), -0.5)
    end

    defp err(p), do: Enum.zip(Mx.to_list(p.x), @c) |> Enum.map(fn {a, b} -> abs(a - b) end) |> Enum.max()

    test "sgd contracts each coordinate by |1 - ηλ| per step" do
      {p, hist} = Optim.fit(&objective/2, %{x: f64([0.0, 0.0])}, steps: 300, optimizer: Optim.sgd(learning_rate: 0.1))
      # rate max(|1 - 0.1|, |1 - 1.0|) = 0.9: after 300 steps the error is 0.9³⁰⁰ · 3 ≈ 6e-14
      assert err(p) <= :math.pow(0.9, 300) * 3 + 1.0e-15
      assert hd(hist) == -0.5 * (9.0 + 40.0)
      assert Enum.chunk_every(hist, 2, 1, :discard) |> Enum.all?(fn [a, b] -> b >= a end)
    end

    test "sgd with momentum converges at rate √μ" do
      # Heavy ball with μ = 0.5, η = 0.1: (1 - √μ)² ≤ ηλ ≤ (1 + √μ)² for λ ∈ {1, 10}, so both
      # coordinates are under-damped with spectral radius √μ ≈ 0.707; 0.707²⁰⁰ ≈ 8e-31 (times a small polynomial factor).
      {p, _} = Optim.fit(&objective/2, %{x: f64([0.0, 0.0])}, steps: 200, optimizer: Optim.sgd(learning_rate: 0.1, momentum: 0.5))
      assert err(p) <= 1.0e-12
    end

    test "adam reaches the maximum" do
      # Near the optimum Adam's step is η·m̂/√v̂ with v̂ the slowly decaying memory of larger
      # gradients, so the iterates settle far inside the first step size η = 0.1.
      {p, hist} = Optim.fit(&objective/2, %{x: f64([0.0, 0.0])}, steps: 3000, optimizer: Optim.adam(learning_rate: 0.1))
      assert err(p) <= 1.0e-6
      assert List.last(hist) > -1.0e-10
    end

    test "minimisation of the negated objective gives the same point" do
      loss = fn p, i -> Mx.negate(objective(p, i)) end
      {p, _} = Optim.fit(loss, %{x: f64([0.0, 0.0])}, steps: 300, optimizer: Optim.sgd(learning_rate: 0.1, maximize: false))
      assert err(p) <= 1.0e-13
    end
  end

  describe "errors" do
    test "options and containers are checked" do
      assert_raise ArgumentError, ~r/learning_rate: must be a positive number \(required\)/, fn -> Optim.sgd([]) end
      assert_raise ArgumentError, ~r/momentum: must be a number in \[0, 1\)/, fn -> Optim.sgd(learning_rate: 0.1, momentum: 1.0) end
      assert_raise ArgumentError, ~r/Gen.Optim.adam: unknown option lr:/, fn -> Optim.adam(lr: 0.1) end
      assert_raise ArgumentError, ~r/wrap numbers with Mx.tensor/, fn -> Optim.init(Optim.adam(), %{x: 1.0}) end
      assert_raise ArgumentError, ~r/floating-point/, fn -> Optim.init(Optim.adam(), %{x: Mx.tensor([1, 2])}) end
      opt = Optim.adam()
      p = %{x: f64(1.0)}

      assert_raise ArgumentError, ~r/do not have the container shape/, fn ->
        Optim.update(opt, Optim.init(opt, p), p, %{y: f64(1.0)})
      end

      assert_raise ArgumentError, ~r/steps: must be a non-negative integer/, fn -> Optim.fit(fn p, _ -> p.x end, p, []) end
      assert_raise ArgumentError, ~r/optimizer: must be a Gen.Optim/, fn -> Optim.fit(fn p, _ -> p.x end, p, steps: 1, optimizer: :adam) end
    end
  end
end
