defmodule Gen.DistFlatTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.Inference.NUTS

  doctest Gen.Dist.Flat

  @ys [0.3, -1.2, 0.8, 2.1, -0.5, 1.4, -0.9, 0.2, -1.7, 1.1]

  defp obs(ys), do: for({y, i} <- Enum.with_index(ys), into: %{}, do: {{:y, i}, y})

  test "log densities: 0 on the support, -Inf off it and at non-finite values, any shape" do
    x = Mx.tensor([-1.0e300, -2.0, 0.0, 5.0, :infinity, :neg_infinity, :nan], type: :f64)

    assert Mx.to_list(Gen.Dist.logpdf(Gen.Dist.flat(), x)) == [
             0.0,
             0.0,
             0.0,
             0.0,
             :neg_infinity,
             :neg_infinity,
             :neg_infinity
           ]

    assert Mx.to_list(Gen.Dist.logpdf(Gen.Dist.half_flat(), x)) == [
             :neg_infinity,
             :neg_infinity,
             0.0,
             0.0,
             :neg_infinity,
             :neg_infinity,
             :neg_infinity
           ]

    assert Mx.shape(Gen.Dist.logpdf(Gen.Dist.flat(), Mx.zeros({2, 3}))) == {2, 3}
    assert Mx.to_number(Gen.Dist.logpdf(Gen.Dist.half_flat(), 3)) == 0.0

    # The gradient of the log density is 0.
    g =
      Mx.grad(fn x -> Mx.sum(Gen.Dist.logpdf(Gen.Dist.half_flat(), x)) end).(
        Mx.tensor([1.0, 2.0], type: :f64)
      )

    assert Mx.to_list(g) == [0.0, 0.0]
  end

  test "sampling an improper prior raises a clear error, wherever it would happen" do
    m =
      gen(fn ->
        mu = trace(:mu, Gen.Dist.flat())
        trace(:y, Gen.Dist.normal(mu, 1.0))
      end)

    msg =
      ~r/Gen.Dist.flat\(\) is an improper prior and cannot be sampled: give its value as a constraint/

    assert_raise ArgumentError, msg, fn -> Gen.Dist.sample(Gen.Dist.flat(), Mx.Random.key(0)) end

    assert_raise ArgumentError, ~r/half_flat\(\) is an improper prior/, fn ->
      Gen.Dist.sample_n(Gen.Dist.half_flat(), Mx.Random.key(0), 3)
    end

    assert_raise ArgumentError, msg, fn -> simulate(m, []) end
    assert_raise ArgumentError, msg, fn -> generate(m, [], %{y: 1.0}) end
    assert_raise ArgumentError, msg, fn -> vsimulate(m, [], 4) end

    assert_raise ArgumentError, msg, fn ->
      Gen.Inference.importance_sampling(m, [], %{y: 1.0}, 10)
    end

    {t, _} = generate(m, [], %{mu: 0.0, y: 1.0})
    assert_raise ArgumentError, msg, fn -> regenerate(t, select(:mu)) end
  end

  test "generate with the value given: the weight is the likelihood alone" do
    m =
      gen(fn ->
        s = trace(:sigma, Gen.Dist.half_flat())
        trace(:y, Gen.Dist.normal(0.0, s))
      end)

    {_t, w} = generate(m, [], %{sigma: 2.0, y: 1.0})
    assert_close(num(w), ln_normal(1.0, 0.0, 2.0))

    m2 =
      gen(fn ->
        s = trace(:sigma, Gen.Dist.half_flat())
        trace(:y, Gen.Dist.normal(0.0, Mx.abs(s)))
      end)

    {t2, _} = generate(m2, [], %{sigma: 2.0, y: 1.0})
    {_t, w2, _, _} = update(t2, %{sigma: -1.0})
    assert num(w2) == :neg_infinity
    {wv, _} = Gen.Vectorized.assess(m, [], %{sigma: Mx.tensor([1.0, 2.0], type: :f64), y: 1.0}, 2)
    assert_close(Enum.at(Mx.to_list(wv), 1), ln_normal(1.0, 0.0, 2.0))

    # Vectorized generate with the value given, shared or per particle.
    {vt, vw} = vgenerate(m, [], %{sigma: 2.0, y: 1.0}, 3)
    assert Mx.to_list(vt[:sigma]) == [2.0, 2.0, 2.0]
    for w <- Mx.to_list(vw), do: assert_close(w, ln_normal(1.0, 0.0, 2.0))
    sigmas = Mx.tensor([0.5, 1.0, 2.0], type: :f64)
    {_vt, vw} = Gen.Vectorized.generate_particles(m, [], %{sigma: sigmas, y: 1.0}, 3)

    for {w, s} <- Enum.zip(Mx.to_list(vw), [0.5, 1.0, 2.0]),
        do: assert_close(w, ln_normal(1.0, 0.0, s))
  end

  test "NUTS: a flat prior on a mean gives the posterior N(ȳ, 1/n)" do
    ys = Enum.take(@ys, 5)

    m =
      gen(fn ->
        mu = trace(:mu, Gen.Dist.flat())
        for i <- 0..4, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
      end)

    {t, _} = generate(m, [], Map.put(obs(ys), :mu, 0.0))
    r = NUTS.sample(t, select(:mu), warmup: 300, samples: 1500, key: Mx.Random.key(1))
    Gen.ChainCheck.assert_posterior(r.draws[[:mu]], Enum.sum(ys) / 5, 1 / 5)
  end

  test "NUTS: a half-flat prior on a scale (log transform) gives sigma^2 ~ InvGamma((n-1)/2, S/2)" do
    n = length(@ys)

    m =
      gen(fn ->
        s = trace(:sigma, Gen.Dist.half_flat())
        for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.normal(0.0, s))
      end)

    {t, _} = generate(m, [], Map.put(obs(@ys), :sigma, 1.0))

    r =
      NUTS.sample(t, select(:sigma),
        warmup: 300,
        samples: 2000,
        key: Mx.Random.key(2),
        transforms: %{sigma: :log}
      )

    # p(sigma | y) ∝ sigma^-n exp(-S / (2 sigma²)): sigma² is InvGamma(a, b) with a = 4.5, b = S/2, so
    # E[sigma] = √b Γ(4)/Γ(4.5), Γ(4.5) = 3.5·2.5·1.5·0.5·√π, and E[sigma²] = b/(a − 1).
    b = Enum.sum(Enum.map(@ys, &(&1 * &1))) / 2
    mean = :math.sqrt(b) * 6 / (3.5 * 2.5 * 1.5 * 0.5 * :math.sqrt(:math.pi()))
    Gen.ChainCheck.assert_posterior(r.draws[[:sigma]], mean, b / 3.5 - mean * mean)
  end

  test "MAP with flat priors is the maximum-likelihood estimate" do
    n = length(@ys)

    m =
      gen(fn ->
        mu = trace(:mu, Gen.Dist.flat())
        s = trace(:sigma, Gen.Dist.half_flat())
        for i <- 0..(n - 1), do: trace({:y, i}, Gen.Dist.normal(mu, s))
      end)

    {t, _} = generate(m, [], obs(@ys) |> Map.put(:mu, 0.0) |> Map.put(:sigma, 1.0))
    t = Gen.Inference.map_optimize(t, select([:mu, :sigma]), tol: 1.0e-9)
    ybar = Enum.sum(@ys) / n
    sigma = :math.sqrt(Enum.sum(Enum.map(@ys, &((&1 - ybar) * (&1 - ybar)))) / n)
    assert_close(num(t[:mu]), ybar, 1.0e-7)
    assert_close(num(t[:sigma]), sigma, 1.0e-7)
  end
end
