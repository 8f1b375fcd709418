defmodule Mx.RandomTest.Stats do
  @moduledoc false
  # Exact CDFs and goodness-of-fit tests for the sampler tests. The special
  # functions are checked against scipy values in the tests below.
  import ExUnit.Assertions

  @sqrt2 :math.sqrt(2)
  @eps 1.0e-15
  @tiny 1.0e-300

  # Kolmogorov's limiting distribution: P(sqrt(n) D > 2.22525) = 1e-4
  # (scipy.stats.kstwobign.isf(1e-4)); the significance of every KS test here.
  @ks_crit 2.2252513961950457
  @alpha 1.0e-4

  def alpha, do: @alpha

  # ---- special functions ------------------------------------------------------------

  @doc "log Γ(x) for x > 0: the recurrence up to 15, then Stirling's series (error < 2e-14 there)."
  def lgamma(x) when x < 15, do: lgamma(x + 1) - :math.log(x)

  def lgamma(x) do
    x2 = x * x

    (x - 0.5) * :math.log(x) - x + 0.5 * :math.log(2 * :math.pi()) +
      1 / (12 * x) * (1 - 1 / (30 * x2) * (1 - 2 / (7 * x2) * (1 - 3 / (4 * x2))))
  end

  @doc "The regularized lower incomplete gamma P(a, x): series below a + 1, continued fraction above."
  def gamma_p(_a, x) when x <= 0, do: 0.0
  def gamma_p(a, x) when x < a + 1, do: gamma_series(a, x, 1 / a, 1 / a, 1) * prefactor(a, x)
  def gamma_p(a, x), do: 1 - gamma_q_cf(a, x)

  def gamma_q(a, x) when x < a + 1, do: 1 - gamma_p(a, x)
  def gamma_q(a, x), do: gamma_q_cf(a, x)

  defp prefactor(a, x), do: :math.exp(-x + a * :math.log(x) - lgamma(a))

  defp gamma_series(a, x, sum, term, n) do
    term = term * x / (a + n)
    sum = sum + term
    if abs(term) < abs(sum) * @eps or n > 100_000, do: sum, else: gamma_series(a, x, sum, term, n + 1)
  end

  # Modified Lentz on Q(a, x) = e^-x x^a / Γ(a) · 1/(x + 1 - a - 1·(1 - a)/(x + 3 - a - ...)).
  defp gamma_q_cf(a, x) do
    b = x + 1 - a
    d = 1 / b
    prefactor(a, x) * gamma_cf(a, b, 1 / @tiny, d, d, 1)
  end

  defp gamma_cf(a, b, c, d, h, i) do
    an = -i * (i - a)
    b = b + 2
    d = nonzero(an * d + b)
    c = nonzero(b + an / c)
    d = 1 / d
    del = d * c
    h = h * del
    if abs(del - 1) < @eps or i > 100_000, do: h, else: gamma_cf(a, b, c, d, h, i + 1)
  end

  defp nonzero(v), do: if(abs(v) < @tiny, do: @tiny, else: v)

  @doc "The regularized incomplete beta I_x(a, b), by its continued fraction on the side where it converges."
  def beta_i(_a, _b, x) when x <= 0, do: 0.0
  def beta_i(_a, _b, x) when x >= 1, do: 1.0

  def beta_i(a, b, x) do
    lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * :math.log(x) + b * :math.log(1 - x)

    if x < (a + 1) / (a + b + 2),
      do: :math.exp(lbt) * beta_cf(a, b, x) / a,
      else: 1 - :math.exp(lbt) * beta_cf(b, a, 1 - x) / b
  end

  defp beta_cf(a, b, x) do
    d = 1 / nonzero(1 - (a + b) * x / (a + 1))
    beta_cf(a, b, x, 1.0, d, d, 1)
  end

  defp beta_cf(a, b, x, c, d, h, m) do
    m2 = 2 * m
    aa = m * (b - m) * x / ((a - 1 + m2) * (a + m2))
    d = 1 / nonzero(1 + aa * d)
    c = nonzero(1 + aa / c)
    h = h * d * c
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1 + m2))
    d = 1 / nonzero(1 + aa * d)
    c = nonzero(1 + aa / c)
    del = d * c
    h = h * del
    if abs(del - 1) < @eps or m > 100_000, do: h, else: beta_cf(a, b, x, c, d, h, m + 1)
  end

  def ndtr(x), do: 0.5 * :math.erfc(-x / @sqrt2)
  # The upper tail 1 - Φ(x), without cancellation for large x.
  def ndtr_upper(x), do: 0.5 * :math.erfc(x / @sqrt2)

  @doc "The chi-square quantile with upper tail `p`, by bisection on Q(df/2, x/2)."
  def chi2_isf(p, df), do: bisect(fn x -> gamma_q(df / 2, x / 2) - p end, 0.0, df + 40 * :math.sqrt(2 * df) + 100, 200)

  defp bisect(_f, lo, hi, 0), do: (lo + hi) / 2

  defp bisect(f, lo, hi, n) do
    mid = (lo + hi) / 2

    if hi - lo < 1.0e-12 * hi,
      do: mid,
      else: if(f.(mid) > 0, do: bisect(f, mid, hi, n - 1), else: bisect(f, lo, mid, n - 1))
  end

  # ---- tests ---------------------------------------------------------------------------

  def flat_f64(x), do: x |> Mx.as_type(:f64) |> Mx.reshape({Mx.size(x)}) |> Mx.to_list()

  @doc """
  Kolmogorov–Smirnov against the exact CDF, at significance 1e-4: D scaled by
  Stephens' finite-n factor sqrt(n) + 0.12 + 0.11/sqrt(n) against Kolmogorov's
  limiting quantile. Returns D.
  """
  def assert_ks(x, cdf, label) do
    xs = x |> Mx.as_type(:f64) |> Mx.reshape({Mx.size(x)}) |> Mx.sort() |> Mx.to_list()
    n = length(xs)

    {d, _} =
      Enum.reduce(xs, {0.0, 0}, fn v, {d, i} ->
        f = cdf.(v)
        {max(d, max(f - i / n, (i + 1) / n - f)), i + 1}
      end)

    sn = :math.sqrt(n)
    crit = @ks_crit / (sn + 0.12 + 0.11 / sn)
    assert d < crit, "#{label}: KS statistic #{Float.round(d, 6)} >= #{Float.round(crit, 6)} (n = #{n}, alpha = 1e-4)"
    d
  end

  @doc """
  Pearson's chi-square against a PMF on the integers, at significance 1e-4.
  Cells are runs of consecutive values merged until each expects at least 5
  draws; the first and last cells take the whole tails.
  """
  def assert_chi2(x, pmf, {lo, hi}, label) do
    counts = x |> flat_f64() |> Enum.frequencies()
    n = counts |> Map.values() |> Enum.sum()
    cells = cells(lo, hi, pmf, n)
    df = length(cells) - 1
    assert df >= 1, "#{label}: too few cells"
    last = length(cells) - 1

    stat =
      cells
      |> Enum.with_index()
      |> Enum.reduce(0.0, fn {{a, b, e}, i}, acc ->
        obs =
          Enum.reduce(counts, 0, fn {v, c}, s ->
            in_cell = (i == 0 or v >= a) and (i == last or v <= b)
            if in_cell, do: s + c, else: s
          end)

        acc + (obs - e) * (obs - e) / e
      end)

    crit = chi2_isf(@alpha, df)

    assert stat < crit,
           "#{label}: chi-square #{Float.round(stat, 3)} >= #{Float.round(crit, 3)} (df = #{df}, alpha = 1e-4)"

    stat
  end

  # [{first, last, expected}], the tails folded into the end cells.
  defp cells(lo, hi, pmf, n) do
    probs = for k <- lo..hi, do: {k, pmf.(k)}

    {cells, open} =
      Enum.reduce(probs, {[], nil}, fn {k, p}, {done, cur} ->
        {a, e} = if cur, do: cur, else: {k, 0.0}
        e = e + n * p
        if e >= 5, do: {[{a, k, e} | done], nil}, else: {done, {a, e}}
      end)

    cells =
      case {open, cells} do
        {nil, _} -> cells
        {{_a, e}, [{a0, _b0, e0} | rest]} -> [{a0, hi, e0 + e} | rest]
      end
      |> Enum.reverse()

    # The tails beyond [lo, hi]: their mass goes to the end cells.
    covered = cells |> Enum.map(&elem(&1, 2)) |> Enum.sum()
    [{a, b, e} | rest] = cells
    below = n * Enum.sum(for k <- 0..(lo - 1)//1, do: pmf.(k))
    cells = [{a, b, e + below} | rest]
    {init, [{a2, b2, e2}]} = Enum.split(cells, -1)
    init ++ [{a2, b2, e2 + max(n - covered - below, 0.0)}]
  end

  @doc "The sample correlation of two equal-length lists."
  def correlation(xs, ys) do
    n = length(xs)
    mx = Enum.sum(xs) / n
    my = Enum.sum(ys) / n

    {sxy, sxx, syy} =
      Enum.zip_reduce(xs, ys, {0.0, 0.0, 0.0}, fn x, y, {a, b, c} ->
        {a + (x - mx) * (y - my), b + (x - mx) * (x - mx), c + (y - my) * (y - my)}
      end)

    sxy / :math.sqrt(sxx * syy)
  end
end

defmodule Mx.RandomTest do
  use ExUnit.Case, async: true
  import Bitwise
  import Mx.RandomTest.Stats
  alias Mx.Random, as: R

  doctest Mx.Random

  @n 50_000

  defp key(i), do: R.key(20_240_000 + i)

  # ---- the statistics helpers against scipy (scipy 1.10: special.gammaln, gammainc, betainc; stats.chi2.isf) ----

  describe "statistics helpers" do
    test "lgamma" do
      for {x, want} <- [
            {0.1, 2.252712651734206},
            {0.5, 0.5723649429247},
            {1, 0.0},
            {2.5, 0.2846828704729192},
            {10, 12.801827480081469},
            {100.5, 361.43554046777757},
            {100_000.0, 1_051_287.7089736569}
          ] do
        assert_in_delta lgamma(x), want, 1.0e-13 * max(1, abs(want))
      end
    end

    test "regularized incomplete gamma" do
      # {a, x, P(a, x)} at the 0.001, 0.3, 0.9 and 0.9999 quantiles
      for {a, x, p} <- [
            {0.1, 6.073048362407869e-31, 0.001},
            {0.1, 3.5860860184109674e-06, 0.3},
            {0.1, 0.266154553738837, 0.9},
            {0.1, 5.3162434776905565, 0.9999},
            {0.5, 7.853985746312461e-07, 0.001},
            {0.5, 0.07423593091627269, 0.3},
            {0.5, 1.352771727047702, 0.9},
            {0.5, 7.568352613311803, 0.9999},
            {1, 0.001000500333583534, 0.001},
            {1, 2.302585092994046, 0.9},
            {3.7, 0.348643700878963, 0.001},
            {3.7, 2.5062261436866717, 0.3},
            {3.7, 6.278922321022635, 0.9},
            {3.7, 15.332616858871582, 0.9999},
            {100, 71.9213974950004, 0.001},
            {100, 94.52429935888071, 0.3},
            {100, 113.01052385984448, 0.9},
            {100, 141.53012691212106, 0.9999}
          ] do
        assert_in_delta gamma_p(a, x), p, 1.0e-12, "P(#{a}, #{x})"
      end
    end

    test "regularized incomplete beta" do
      for {a, b, x, p} <- [
            {0.5, 0.5, 2.4673990709169446e-06, 0.001},
            {0.5, 0.5, 0.2061073738537634, 0.3},
            {0.5, 0.5, 0.9755282581475768, 0.9},
            {0.5, 0.5, 0.999999975325989, 0.9998999999997047},
            {2, 5, 0.008255492787746678, 0.001},
            {2, 5, 0.5103163065514917, 0.9},
            {2, 5, 0.8870314439320781, 0.9999},
            {0.1, 3, 2.3669013519449123e-31, 0.001},
            {0.1, 3, 1.397635130911783e-06, 0.3},
            {0.1, 3, 0.8668405373656841, 0.9999},
            {30, 40, 0.25691428047522824, 0.001},
            {30, 40, 0.39698703679444164, 0.3},
            {30, 40, 0.504629244871047, 0.9},
            {30, 40, 0.6471773732382367, 0.9999}
          ] do
        assert_in_delta beta_i(a, b, x), p, 1.0e-11, "I(#{x}; #{a}, #{b})"
      end
    end

    test "chi-square critical values" do
      for {df, want} <- [
            {1, 15.136705226623397},
            {2, 18.420680743952364},
            {5, 25.744831959055876},
            {20, 52.38597327305218},
            {100, 161.31865695904756},
            {300, 399.75593550052747}
          ] do
        assert_in_delta chi2_isf(1.0e-4, df), want, 1.0e-8 * want
      end
    end
  end

  # ---- the generator ---------------------------------------------------------------------

  describe "generator" do
    test "Threefry-2x32-20 matches the Random123 known-answer vectors" do
      # Random123 distribution, tests/kat_vectors: "threefry2x32 20 ctr0 ctr1 key0 key1 out0 out1".
      vectors = [
        {[0, 0], [0, 0], [0x6B200159, 0x99BA4EFE]},
        {[0xFFFFFFFF, 0xFFFFFFFF], [0xFFFFFFFF, 0xFFFFFFFF], [0x1CB996FC, 0xBB002BE7]},
        {[0x243F6A88, 0x85A308D3], [0x13198A2E, 0x03707344], [0xC4923A9C, 0x483DF7A0]}
      ]

      for {ctr, key, want} <- vectors do
        k = Mx.tensor(key, type: :u32)
        c = Mx.tensor(ctr, type: :u32)
        out = Mx.NIF.random(:random_bits, k.ref, [c.ref], :u32, {2}, []) |> Mx.Array.wrap()
        assert Mx.to_list(out) == want
      end
    end

    test "same key and shape give identical bits; a small draw is the prefix of a large one" do
      k = key(1)
      big = R.normal(k, shape: {1_000_003})
      small = R.normal(k, shape: {5, 3})
      assert Mx.to_binary(big) == Mx.to_binary(R.normal(k, shape: {1_000_003}))
      assert Mx.to_list(Mx.reshape(small, {15})) == Mx.to_list(big[0..14])

      for {f, args} <- [
            {:uniform, [[type: :f64]]},
            {:gamma, [2.5, [type: :f64]]},
            {:poisson, [30.0, []]},
            {:truncated_normal, [-1.0, 2.0, []]},
            {:randint, [0, 1000, []]},
            {:bits, [[type: :u64]]}
          ] do
        {params, [opts]} = Enum.split(args, -1)
        large = apply(R, f, [k | params] ++ [Keyword.put(opts, :shape, {200_001})])
        tiny = apply(R, f, [k | params] ++ [Keyword.put(opts, :shape, {7})])
        assert Mx.to_list(tiny) == Mx.to_list(large[0..6]), "#{f}: prefix"
      end
    end

    test "results do not depend on threads or evaluation order" do
      k = key(2)
      reference = Mx.to_binary(R.gamma(k, 3.0, shape: {300_000}))

      results =
        1..6
        |> Enum.map(fn _ -> Task.async(fn -> Mx.to_binary(R.gamma(k, 3.0, shape: {300_000})) end) end)
        |> Task.await_many(60_000)

      assert Enum.all?(results, &(&1 == reference))

      a = R.normal(k, shape: {1000})
      b = R.uniform(k, shape: {1000})
      Mx.eval([b, a])
      assert Mx.to_binary(a) == Mx.to_binary(R.normal(k, shape: {1000}))
      assert Mx.to_binary(b) == Mx.to_binary(R.uniform(k, shape: {1000}))
    end

    test "draws are lazy" do
      x = R.normal(key(3), shape: {10})
      refute Mx.evaluated?(x)
      assert Mx.shape(x) == {10}
    end

    test "split keys give uncorrelated draws (within 4 standard errors of 1/sqrt(n))" do
      n = 100_000
      keys = R.split(key(4), 2)
      [x, y] = for i <- 0..1, do: keys[i] |> R.normal(shape: {n}, type: :f64) |> Mx.to_list()
      assert abs(correlation(x, y)) < 4 / :math.sqrt(n)

      # Neighbouring keys among many, and fold_in of neighbouring data: 5 standard errors for 2 x 31 pairs.
      m = 8_000
      many = R.split(key(5), 32)
      draws = for i <- 0..31, do: many[i] |> R.uniform(shape: {m}, type: :f64) |> Mx.to_list()
      folds = for i <- 0..31, do: key(5) |> R.fold_in(i) |> R.uniform(shape: {m}, type: :f64) |> Mx.to_list()

      for list <- [draws, folds], [a, b] <- Enum.chunk_every(list, 2, 1, :discard) do
        assert abs(correlation(a, b)) < 5 / :math.sqrt(m)
      end

      # Keys differ: split, fold_in and the parent never coincide.
      all =
        [Mx.to_list(key(5)) | for(i <- 0..31, do: Mx.to_list(many[i]))] ++
          for(i <- 0..31, do: Mx.to_list(R.fold_in(key(5), i)))

      assert length(Enum.uniq(all)) == length(all)
    end

    test "fold_in takes integers and scalar integer arrays of any width alike" do
      k = key(6)

      for d <- [0, 1, 0xFFFF_FFFF, 0x1_0000_0000, 123_456_789_012_345, -1] do
        want = Mx.to_list(R.fold_in(k, d))
        type = if d < 0, do: :s64, else: :u64
        assert Mx.to_list(R.fold_in(k, Mx.tensor(d, type: type))) == want, "data #{d}"
      end

      assert Mx.to_list(R.fold_in(k, Mx.tensor(7, type: :s32))) == Mx.to_list(R.fold_in(k, 7))
    end
  end

  # ---- continuous samplers: Kolmogorov–Smirnov against the exact CDF ---------------------------

  describe "continuous samplers" do
    test "uniform" do
      for type <- [:f32, :f64] do
        assert_ks(R.uniform(key(10), shape: {@n}, type: type), &min(max(&1, 0.0), 1.0), "uniform #{type}")
        x = R.uniform(key(11), -2.0, 3.0, shape: {@n}, type: type)
        assert_ks(x, &((&1 + 2) / 5), "uniform(-2, 3) #{type}")
      end
    end

    test "normal" do
      for type <- [:f32, :f64] do
        assert_ks(R.normal(key(12), shape: {100_000}, type: type), &ndtr/1, "normal #{type}")
        x = R.normal(key(13), 3.0, 0.5, shape: {@n}, type: type)
        assert_ks(x, &ndtr((&1 - 3) / 0.5), "normal(3, 0.5) #{type}")
      end

      # Broadcast parameters: each column has its own law.
      x = R.normal(key(14), Mx.tensor([-10.0, 10.0]), Mx.tensor([1.0, 4.0]), shape: {20_000, 2}, type: :f64)
      assert_ks(x[[.., 0]], &ndtr(&1 + 10), "normal column 0")
      assert_ks(x[[.., 1]], &ndtr((&1 - 10) / 4), "normal column 1")
    end

    test "truncated normal, in the body and far in the tails" do
      cases = [{-1.0, 2.0}, {3.0, 3.5}, {8.0, :infinity}, {:neg_infinity, -30.0}, {-0.5, 0.5}, {-40.0, 35.0}]

      for {{a, b}, i} <- Enum.with_index(cases), type <- [:f64, :f32] do
        x = R.truncated_normal(key(20 + i), a, b, shape: {20_000}, type: type)
        assert_ks(x, &trunc_cdf(&1, a, b), "truncated_normal(#{a}, #{b}) #{type}")
      end
    end

    test "gamma" do
      for {alpha, i} <- Enum.with_index([0.1, 0.5, 1.0, 3.7, 100.0]) do
        x = R.gamma(key(30 + i), alpha, shape: {20_000}, type: :f64)
        assert_ks(x, &gamma_p(alpha, &1), "gamma(#{alpha}) f64")
      end

      for alpha <- [0.5, 3.7] do
        assert_ks(R.gamma(key(36), alpha, shape: {20_000}), &gamma_p(alpha, &1), "gamma(#{alpha}) f32")
      end

      x = R.gamma(key(37), 2.0, 3.0, shape: {20_000}, type: :f64)
      assert_ks(x, &gamma_p(2.0, &1 / 3), "gamma(2, scale 3)")

      # An array of shapes: each column its own alpha.
      x = R.gamma(key(38), Mx.tensor([0.3, 7.0], type: :f64), shape: {20_000, 2})
      assert Mx.type(x) == :f64
      assert_ks(x[[.., 0]], &gamma_p(0.3, &1), "gamma column alpha 0.3")
      assert_ks(x[[.., 1]], &gamma_p(7.0, &1), "gamma column alpha 7")
    end

    test "beta" do
      for {{a, b}, i} <- Enum.with_index([{0.5, 0.5}, {2.0, 5.0}, {0.1, 3.0}, {30.0, 40.0}]) do
        x = R.beta(key(40 + i), a, b, shape: {20_000}, type: :f64)
        assert_ks(x, &beta_i(a, b, &1), "beta(#{a}, #{b})")
      end

      assert_ks(R.beta(key(45), 2.0, 5.0, shape: {20_000}), &beta_i(2.0, 5.0, &1), "beta(2, 5) f32")
    end

    test "dirichlet: marginals are Beta(alpha_i, alpha_0 - alpha_i) and rows sum to 1" do
      alpha = [0.3, 1.0, 4.0]
      x = R.dirichlet(key(50), Mx.tensor(alpha, type: :f64), shape: {20_000})
      assert Mx.shape(x) == {20_000, 3}
      sums = x |> Mx.sum(axes: [1]) |> Mx.to_list()
      assert Enum.all?(sums, &(abs(&1 - 1) < 1.0e-12))

      for {a, i} <- Enum.with_index(alpha) do
        assert_ks(x[[.., i]], &beta_i(a, 5.3 - a, &1), "dirichlet marginal #{i}")
      end
    end

    test "exponential, laplace, cauchy, gumbel" do
      for type <- [:f32, :f64] do
        assert_ks(R.exponential(key(60), shape: {@n}, type: type), &(1 - :math.exp(-&1)), "exponential #{type}")
        assert_ks(R.exponential(key(61), 2.5, shape: {@n}, type: type), &(1 - :math.exp(-2.5 * &1)), "exponential(2.5)")
        assert_ks(R.laplace(key(62), 1.0, 2.0, shape: {@n}, type: type), &laplace_cdf(&1, 1.0, 2.0), "laplace #{type}")
        assert_ks(R.cauchy(key(63), shape: {@n}, type: type), &(0.5 + :math.atan(&1) / :math.pi()), "cauchy #{type}")
        x = R.cauchy(key(64), 2.0, 0.5, shape: {@n}, type: type)
        assert_ks(x, &(0.5 + :math.atan((&1 - 2) / 0.5) / :math.pi()), "cauchy(2, 0.5) #{type}")
        assert_ks(R.gumbel(key(65), shape: {@n}, type: type), &:math.exp(-:math.exp(-&1)), "gumbel #{type}")
        x = R.gumbel(key(66), -1.0, 3.0, shape: {@n}, type: type)
        assert_ks(x, &:math.exp(-:math.exp(-(&1 + 1) / 3)), "gumbel(-1, 3) #{type}")
      end
    end

    test "half types: draws round once, uniforms stay below 1, tails stay finite" do
      for type <- [:f16, :bf16] do
        u = R.uniform(key(67), shape: {@n}, type: type)
        assert Mx.type(u) == type
        assert Mx.to_number(Mx.reduce_max(u)) < 1.0
        # On a grid of 2^-11 (f16) or 2^-8 (bf16): the KS statistic grows by at most one step.
        assert_ks(u, &min(max(&1, 0.0), 1.0), "uniform #{type}")

        # (Not cauchy: beyond 65504, about 1e-5 of its draws, f16 rightly rounds to infinity.)
        for f <- [:exponential, :laplace, :gumbel, :normal] do
          x = apply(R, f, [key(68), [shape: {@n}, type: type]])
          assert Mx.type(x) == type
          refute x |> Mx.is_infinity() |> Mx.any() |> Mx.to_number(), "#{f} #{type} reached infinity"
        end
      end
    end

    test "multivariate normal: sample mean and covariance within standard errors" do
      n = 100_000
      mean = [1.0, -1.0, 0.5]
      cov = [[2.0, 0.5, 0.3], [0.5, 1.0, -0.2], [0.3, -0.2, 0.5]]
      x = R.multivariate_normal(key(70), Mx.tensor(mean, type: :f64), Mx.tensor(cov, type: :f64), shape: {n})
      assert Mx.describe(x) == "f64[100000][3]"
      m = x |> Mx.mean(axes: [0]) |> Mx.to_list()
      c = x |> Mx.subtract(Mx.tensor(m, type: :f64)) |> then(&Mx.matmul(Mx.transpose(&1), &1)) |> Mx.divide(n - 1)
      c = Mx.to_list(c)

      for i <- 0..2 do
        sii = Enum.at(Enum.at(cov, i), i)
        assert abs(Enum.at(m, i) - Enum.at(mean, i)) < 4 * :math.sqrt(sii / n), "mean #{i}"

        for j <- 0..2 do
          sij = Enum.at(Enum.at(cov, i), j)
          sjj = Enum.at(Enum.at(cov, j), j)
          # Var of a normal sample covariance: (s_ii s_jj + s_ij^2) / n.
          se = :math.sqrt((sii * sjj + sij * sij) / n)
          assert abs(Enum.at(Enum.at(c, i), j) - sij) < 4 * se, "cov #{i},#{j}"
        end
      end

      # A projection is normal with variance w' cov w: KS on it.
      proj = x |> Mx.subtract(Mx.tensor(mean, type: :f64)) |> Mx.matmul(Mx.tensor([1.0, 1.0, 1.0], type: :f64))
      var = cov |> List.flatten() |> Enum.sum()
      assert_ks(proj, &ndtr(&1 / :math.sqrt(var)), "multivariate normal projection")
    end
  end

  # ---- discrete samplers: chi-square against the exact PMF -------------------------------------

  describe "discrete samplers" do
    test "poisson, by inversion and by PTRS" do
      for {rate, i} <- Enum.with_index([0.5, 4.0, 9.99, 10.0, 30.0, 1000.0]) do
        x = R.poisson(key(80 + i), rate, shape: {@n})
        hi = round(rate + 12 * :math.sqrt(rate) + 15)
        lo = max(0, round(rate - 12 * :math.sqrt(rate)))
        assert_chi2(x, &poisson_pmf(rate, &1), {lo, hi}, "poisson(#{rate})")
      end

      x = R.poisson(key(90), Mx.tensor([2.0, 200.0]), shape: {20_000, 2}, type: :f64)
      assert Mx.type(x) == :f64
      assert_chi2(x[[.., 0]], &poisson_pmf(2.0, &1), {0, 20}, "poisson column rate 2")
      assert_chi2(x[[.., 1]], &poisson_pmf(200.0, &1), {140, 270}, "poisson column rate 200")
    end

    test "bernoulli: counts within 4 binomial standard errors" do
      for {p, i} <- Enum.with_index([0.01, 0.3, 0.5, 0.97]) do
        x = R.bernoulli(key(100 + i), p, shape: {@n})
        assert Mx.type(x) == :bool
        k = x |> Mx.sum() |> Mx.to_number()
        assert abs(k - @n * p) < 4 * :math.sqrt(@n * p * (1 - p)), "bernoulli(#{p}): #{k}"
      end

      assert R.bernoulli(key(105), 0.5, shape: {3}, type: :f32) |> Mx.type() == :f32
    end

    test "categorical: Gumbel-max frequencies match the softmax" do
      probs = [0.1, 0.2, 0.3, 0.15, 0.25]
      logits = Mx.tensor(Enum.map(probs, &(:math.log(&1) + 3.0)))
      x = R.categorical(key(110), logits, num_samples: @n)
      assert Mx.describe(x) == "s64[#{@n}]"
      assert_chi2(x, &Enum.at(probs, &1), {0, 4}, "categorical")

      # Categories on axis 0, two batch columns with their own laws.
      other = [0.6, 0.05, 0.05, 0.2, 0.1]
      logits2 = Mx.log(Mx.tensor(Enum.zip_with(probs, other, &[&1, &2])))
      y = R.categorical(key(111), logits2, axis: 0, shape: {20_000, 2}, type: :s32)
      assert Mx.describe(y) == "s32[20000][2]"
      assert_chi2(y[[.., 0]], &Enum.at(probs, &1), {0, 4}, "categorical column 0")
      assert_chi2(y[[.., 1]], &Enum.at(other, &1), {0, 4}, "categorical column 1")
    end

    test "randint: exactly uniform, small and huge ranges" do
      x = R.randint(key(120), 0, 6, shape: {@n})
      assert_chi2(x, fn _ -> 1 / 6 end, {0, 5}, "randint(0, 6)")
      y = R.randint(key(121), -3, 4, shape: {@n}, type: :s8)
      assert Mx.type(y) == :s8
      assert_chi2(Mx.add(y, 3), fn _ -> 1 / 7 end, {0, 6}, "randint(-3, 4) s8")

      # A range of 3 * 2^61: Lemire's rejection is what keeps the thirds equal.
      big = 3 * Bitwise.bsl(1, 61)
      z = R.randint(key(122), 0, big, shape: {@n})
      thirds = z |> Mx.as_type(:f64) |> Mx.divide(big / 3) |> Mx.floor()
      assert_chi2(thirds, fn _ -> 1 / 3 end, {0, 2}, "randint thirds of 3 * 2^61")

      # Array bounds, per element.
      w = R.randint(key(123), Mx.tensor([0, 100]), Mx.tensor([2, 103]), shape: {@n, 2})
      assert_chi2(w[[.., 0]], fn _ -> 1 / 2 end, {0, 1}, "randint column 0")
      assert_chi2(Mx.subtract(w[[.., 1]], 100), fn _ -> 1 / 3 end, {0, 2}, "randint column 1")

      u = R.randint(key(124), 0, 0xFFFF_FFFF_FFFF_FFFF, shape: {4}, type: :u64)
      assert Mx.type(u) == :u64
    end

    test "permutation: every ordering of 4 equally likely" do
      k = key(130)
      keys = R.split(k, 2400)
      perms = for i <- 0..2399, do: R.permutation(keys[i], 4)
      Mx.eval(perms)
      orders = Enum.map(perms, &Mx.to_list/1)
      assert Enum.all?(orders, &(Enum.sort(&1) == [0, 1, 2, 3]))
      index = orders |> Enum.uniq() |> Enum.sort() |> Enum.with_index() |> Map.new()
      assert map_size(index) == 24
      codes = Mx.tensor(Enum.map(orders, &Map.fetch!(index, &1)))
      assert_chi2(codes, fn _ -> 1 / 24 end, {0, 23}, "permutations of 4")

      big = R.permutation(k, 100_000) |> Mx.to_list()
      assert Enum.sort(big) == Enum.to_list(0..99_999)
      a = Mx.iota({3, 5})
      p = R.permutation(k, a, axis: 1)
      assert p |> Mx.sort(axis: 1) |> Mx.to_list() == Mx.to_list(a)
    end
  end

  # ---- errors --------------------------------------------------------------------------

  describe "errors" do
    test "bad keys, shapes, types and parameters raise, naming the function" do
      k = key(140)

      assert_raise ArgumentError, ~r/normal\/4: the key must be a u32 array of shape \{2\}.*f32\[2\]/, fn ->
        R.normal(Mx.tensor([1.0, 2.0]), shape: {2})
      end

      assert_raise ArgumentError, ~r/key must be a u32/, fn -> R.uniform(Mx.tensor([1, 2, 3], type: :u32)) end
      assert_raise ArgumentError, ~r/key must be a u32/, fn -> R.split(:not_a_key) end
      assert_raise ArgumentError, ~r/split\/2 expects a positive/, fn -> R.split(k, 0) end
      assert_raise ArgumentError, ~r/key\/1 expects an integer seed/, fn -> R.key(1 <<< 64) end
      assert_raise ArgumentError, ~r/type: must be a float type, got s32/, fn -> R.normal(k, type: :s32) end
      assert_raise ArgumentError, ~r/shape: must be a tuple/, fn -> R.normal(k, shape: [3]) end

      assert_raise ArgumentError, ~r/parameter 1 has shape \{3\}, which does not broadcast to shape: \{2\}/, fn ->
        R.normal(k, Mx.tensor([1.0, 2.0, 3.0]), 1.0, shape: {2})
      end

      assert_raise ArgumentError, ~r/do not broadcast together/, fn ->
        R.uniform(k, Mx.tensor([1.0, 2.0]), Mx.tensor([3.0, 4.0, 5.0]))
      end

      assert_raise ArgumentError, ~r/randint\/4: the range \[5, 5\) must be non-empty/, fn -> R.randint(k, 5, 5) end
      assert_raise ArgumentError, ~r/fit u8/, fn -> R.randint(k, 0, 257, type: :u8) end
      assert_raise ArgumentError, ~r/type: must be an integer type/, fn -> R.randint(k, 0, 3, type: :f32) end
      assert_raise ArgumentError, ~r/low must be an integer/, fn -> R.randint(k, 0.5, 3) end
      assert_raise ArgumentError, ~r/axis 2 is out of range/, fn -> R.categorical(k, Mx.tensor([1.0, 2.0]), axis: 2) end

      assert_raise ArgumentError, ~r/must end with the batch axes/, fn ->
        R.categorical(k, Mx.tensor([[1.0, 2.0]]), shape: {3, 2})
      end

      assert_raise ArgumentError, ~r/mean \{..., d\} and cov \{d, d\}/, fn ->
        R.multivariate_normal(k, Mx.tensor([0.0, 0.0]), Mx.eye(3))
      end

      assert_raise ArgumentError, ~r/fold_in\/2 expects integer data/, fn -> R.fold_in(k, Mx.tensor(1.5)) end
      assert_raise ArgumentError, ~r/bits\/2: type: must be :u32 or :u64/, fn -> R.bits(k, type: :f32) end
    end

    test "invalid parameters found on evaluation" do
      k = key(141)
      # Empty integer ranges from arrays and invalid integer Poisson rates raise, naming the element.
      x = R.randint(k, Mx.tensor([0, 5]), Mx.tensor([3, 5]))
      assert_raise Mx.Error, ~r/^\[random_randint\] empty range at element 1: low 5, high 5/, fn -> Mx.eval(x) end
      y = R.poisson(k, Mx.tensor([1.0, -2.0]))
      assert_raise Mx.Error, ~r/^\[random_poisson\] rate -2 at element 1/, fn -> Mx.eval(y) end
      # As floats they are NaN, like other out-of-domain parameters.
      assert R.poisson(k, Mx.tensor([1.0, -2.0]), type: :f64) |> Mx.to_list() |> Enum.at(1) == :nan
      assert R.gamma(k, Mx.tensor([0.0, -1.0])) |> Mx.to_list() == [:nan, :nan]
      assert R.truncated_normal(k, 1.0, 1.0) |> Mx.to_list() == :nan
    end

    test "the random NIF survives malformed arguments" do
      :rand.seed(:exsss, {7, 8, 9})
      k = key(142).ref
      f = Mx.tensor([1.0, 2.0]).ref

      ops = [
        :random_bits,
        :random_normal,
        :random_truncated_normal,
        :random_gamma,
        :random_poisson,
        :random_randint,
        :add,
        :bogus,
        3
      ]

      params = [[], [f], [f, f], [k], [k, k, k], [:x], :x, [Mx.tensor(1).ref], [Mx.tensor([[1.0]]).ref]]
      types = [:u32, :u64, :f32, :f64, :f16, :s64, :u8, :bool, :nope, nil]
      shapes = [{}, {2}, {3, 2}, {0}, {-1}, {1 <<< 40, 1 <<< 40}, [2], :x, {1, 1, 1, 1, 1, 1, 1, 1, 1}]
      flags = [[], [:open], [:log], [:open, :log], [:bad], :x, [1]]
      keys = [k, f, Mx.tensor([1, 2], type: :u64).ref, :x, <<1, 2>>]

      for _ <- 1..3000 do
        args = [
          Enum.random(ops),
          Enum.random(keys),
          Enum.random(params),
          Enum.random(types),
          Enum.random(shapes),
          Enum.random(flags)
        ]

        try do
          out = apply(Mx.NIF, :random, args)
          Mx.eval(Mx.Array.wrap(out))
        rescue
          e in [ArgumentError, Mx.Error] -> assert e.message =~ ~r/^\[[a-z_]+\] /
        end
      end
    end
  end

  # ---- exact laws used above ------------------------------------------------------------

  defp poisson_pmf(rate, k), do: :math.exp(k * :math.log(rate) - rate - lgamma(k + 1))

  defp laplace_cdf(x, mu, b) when x < mu, do: 0.5 * :math.exp((x - mu) / b)
  defp laplace_cdf(x, mu, b), do: 1 - 0.5 * :math.exp(-(x - mu) / b)

  # The standard normal restricted to [a, b]; upper tails measured from above, so far tails keep their digits.
  defp trunc_cdf(x, a, b) do
    {a, b} = {bound(a), bound(b)}

    cond do
      x <= a -> 0.0
      x >= b -> 1.0
      a >= 0 -> (ndtr_upper(a) - ndtr_upper(x)) / (ndtr_upper(a) - ndtr_upper(b))
      true -> (ndtr(x) - ndtr(a)) / (ndtr(b) - ndtr(a))
    end
  end

  defp bound(:infinity), do: 1.0e308
  defp bound(:neg_infinity), do: -1.0e308
  defp bound(x), do: x
end
