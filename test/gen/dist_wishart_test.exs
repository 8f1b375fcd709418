defmodule Gen.DistWishartTest do
  # Wishart and inverse Wishart: log-densities against scipy (the wishart/inv_wishart cases
  # of test/reference/dist_discrete.exs), the support, sample moments, gradients.
  use ExUnit.Case, async: true

  alias Gen.Dist

  doctest Gen.Dist.Wishart
  doctest Gen.Dist.InvWishart

  defp f64(l), do: Mx.tensor(l, type: :f64)

  # ---- log-densities against scipy ---------------------------------------------------

  {cases, _} = Code.eval_file(Path.expand("../reference/dist_discrete.exs", __DIR__))

  for c <- cases, c.dist in [:wishart, :inv_wishart] do
    @c c
    test "logpdf: #{c.name}" do
      %{dist: dist, params: [df, scale], values: values, expected: expected} = @c
      got = apply(Dist, dist, [df, scale]) |> Dist.logpdf(f64(values))
      assert Mx.shape(got) == {length(values)}
      # Relative error <= 1e-10 (absolute near 0), as the other reference cases.
      Gen.DistCheck.assert_close!(got, expected, @c.name)
    end
  end

  @scale [[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 0.5]]

  # ---- support and parameters ---------------------------------------------------------

  test "values that are not symmetric positive definite score -Inf" do
    outside = [
      # indefinite (eigenvalues -1 and 3)
      [[1.0, 2.0], [2.0, 1.0]],
      # singular
      [[1.0, 0.0], [0.0, 0.0]],
      # negative definite
      [[-1.0, 0.0], [0.0, -2.0]],
      # positive definite lower triangle, but not symmetric
      [[2.0, 0.7], [0.5, 1.0]]
    ]

    for d <- [
          Dist.wishart(3.0, [[1.0, 0.2], [0.2, 1.0]]),
          Dist.inv_wishart(3.0, [[1.0, 0.2], [0.2, 1.0]])
        ] do
      lp = Dist.logpdf(d, f64(outside ++ [[[2.0, 0.5], [0.5, 1.0]]])) |> Mx.to_list()
      assert Enum.take(lp, 4) == List.duplicate(:neg_infinity, 4), inspect(d)
      assert is_float(List.last(lp))
    end
  end

  test "batched df: broadcast against a batch of values" do
    d = Dist.wishart(f64([3.0, 6.0]), [[1.0, 0.0], [0.0, 1.0]])
    x = f64([[[2.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 3.0]]])
    lp = Dist.logpdf(d, x) |> Mx.to_list()

    for {df, i} <- [{3.0, 0}, {6.0, 1}] do
      one = Dist.logpdf(Dist.wishart(df, [[1.0, 0.0], [0.0, 1.0]]), x) |> Mx.to_list()
      assert_in_delta Enum.at(lp, i), Enum.at(one, i), 1.0e-12
    end

    assert Mx.shape(Dist.sample(d, Mx.Random.key(1))) == {2, 2, 2}
    assert Mx.shape(Dist.sample_n(d, Mx.Random.key(1), 7)) == {7, 2, 2, 2}

    assert Mx.shape(Dist.sample_n(Dist.inv_wishart(f64([3.0, 6.0]), @scale), Mx.Random.key(1), 7)) ==
             {7, 2, 3, 3}
  end

  # Issue 10 item 6 changed the last part: a lazy df out of range scores -Inf (was NaN), and a
  # known (evaluated) one raises like a number.
  test "invalid parameters raise, naming the parameter; a lazy df out of range gives -Inf" do
    assert_raise ArgumentError, ~r/wishart: df must be > p - 1 = 2/, fn ->
      Dist.wishart(1.5, @scale)
    end

    assert_raise ArgumentError, ~r/inv_wishart: scale must be a square \{p, p\} matrix/, fn ->
      Dist.inv_wishart(3.0, [1.0, 2.0])
    end

    assert_raise ArgumentError, ~r/wishart: scale must be symmetric positive definite/, fn ->
      Dist.wishart(3.0, [[1.0, 2.0], [2.0, 1.0]])
    end

    assert_raise ArgumentError, ~r/wishart: the value must be \{\.\.\., 3, 3\} matrices/, fn ->
      Dist.logpdf(Dist.wishart(4.0, @scale), [[1.0, 0.0], [0.0, 1.0]])
    end

    assert_raise ArgumentError, ~r/wishart: df must be > p - 1 = 1, got \[0.5\]/, fn ->
      Dist.wishart(f64([0.5]), [[1.0, 0.0], [0.0, 1.0]])
    end

    lazy_df = Mx.add(f64(0.5), 0.0)
    lp = Dist.logpdf(Dist.wishart(lazy_df, [[1.0, 0.0], [0.0, 1.0]]), [[1.0, 0.0], [0.0, 1.0]])
    assert Mx.to_number(lp) == :neg_infinity
    refute Dist.reparameterized?(Dist.wishart(3.0, @scale))
    refute Dist.reparameterized?(Dist.inv_wishart(3.0, @scale))
  end

  # ---- samplers: moments -------------------------------------------------------------------

  @n 20_000

  # Every entry of the sample mean within 5 standard errors sqrt(var_ij / n) of the mean.
  defp assert_moments!(draws, mean, var, label) do
    m = draws |> Mx.mean(axes: [0]) |> Mx.to_list()

    for i <- 0..2, j <- 0..2 do
      got = m |> Enum.at(i) |> Enum.at(j)
      se = :math.sqrt(var.(i, j) / @n)

      assert abs(got - mean.(i, j)) <= 5 * se,
             "#{label}[#{i}][#{j}]: sample mean #{got} vs #{mean.(i, j)} (se #{se})"
    end
  end

  defp s(i, j), do: @scale |> Enum.at(i) |> Enum.at(j)

  test "wishart: draws symmetric positive definite, E[W] = df·scale within 5 standard errors" do
    df = 5.5
    x = Dist.sample_n(Dist.wishart(df, @scale), Mx.Random.key(41), @n)
    assert Mx.describe(x) == "f64[#{@n}][3][3]"
    assert Mx.to_number(Mx.all(Dist.Wishart.spd?(x)))
    # Var(W_ij) = df (S_ij² + S_ii S_jj).
    assert_moments!(
      x,
      &(df * s(&1, &2)),
      &(df * (s(&1, &2) ** 2 + s(&1, &1) * s(&2, &2))),
      "wishart"
    )
  end

  test "inv_wishart: draws symmetric positive definite, E[X] = scale/(df - p - 1) within 5 standard errors" do
    {df, p} = {9.0, 3}
    x = Dist.sample_n(Dist.inv_wishart(df, @scale), Mx.Random.key(42), @n)
    assert Mx.describe(x) == "f64[#{@n}][3][3]"
    assert Mx.to_number(Mx.all(Dist.Wishart.spd?(x)))
    # Var(X_ij) = ((df-p+1) S_ij² + (df-p-1) S_ii S_jj) / ((df-p)(df-p-1)²(df-p-3)).
    var = fn i, j ->
      ((df - p + 1) * s(i, j) ** 2 + (df - p - 1) * s(i, i) * s(j, j)) /
        ((df - p) * (df - p - 1) ** 2 * (df - p - 3))
    end

    assert_moments!(x, &(s(&1, &2) / (df - p - 1)), var, "inv_wishart")
  end

  # ---- gradients against finite differences -------------------------------------------------

  # Scale and value as a aᵀ + I and b bᵀ + I, so every finite-difference step stays
  # symmetric positive definite (perturbing one entry of X itself would leave the support).
  defp spd(a) do
    r = Mx.rank(a)
    at = Mx.transpose(a, axes: Enum.to_list(0..(r - 3)//1) ++ [r - 1, r - 2])
    Mx.add(Mx.matmul(a, at), Mx.eye(3, type: :f64))
  end

  @a [[0.5, 0.1, -0.2], [0.3, 0.8, 0.0], [-0.1, 0.2, 0.4]]
  @b [
    [[1.0, 0.0, 0.3], [0.2, 0.7, 0.0], [-0.4, 0.1, 1.2]],
    [[0.3, -0.5, 0.0], [0.0, 0.4, 0.9], [0.6, 0.0, 0.2]]
  ]

  for dist <- [:wishart, :inv_wishart] do
    @dist dist
    test "gradient of #{dist} logpdf w.r.t. df, scale and value" do
      f = fn df, a, b -> Dist.logpdf(apply(Dist, @dist, [df, spd(a)]), spd(b)) end
      Mx.GradCheck.check_grads!(f, [f64(5.5), f64(@a), f64(@b)])
    end
  end
end
