defmodule Gen.DiagnosticsTest do
  use ExUnit.Case, async: true

  alias Gen.Diagnostics, as: D

  doctest Gen.Diagnostics

  # Written by test/reference/generate_diagnostics.py (numpy/scipy, the paper's equations step by step).
  @cases "data/diagnostics.exs" |> Path.expand(__DIR__) |> Code.eval_file() |> elem(0)

  # Both sides compute the same sums in f64 in different orders (numpy's pairwise
  # sums and BLAS dots vs sequential ones): relative differences of ~1e-13 at most.
  @rtol 1.0e-10

  defp assert_rel!(got, want, what) do
    assert is_float(got), "#{what}: got #{inspect(got)}, expected #{want}"

    assert abs(got - want) <= @rtol * max(abs(want), 1.0),
           "#{what}: got #{got}, expected #{want} (rtol #{@rtol})"
  end

  describe "matches the numpy reference (generate_diagnostics.py) within 1e-10" do
    for c <- @cases do
      @c c
      test @c.name do
        x = Mx.ReferenceCase.decode(@c.samples)
        e = @c.expected
        name = @c.name

        assert_rel!(D.ess(x), e.ess_bulk, "#{name} ess bulk")
        assert_rel!(D.ess(x, method: :tail), e.ess_tail, "#{name} ess tail")
        assert_rel!(D.rhat(x, method: :bulk), e.rhat_bulk, "#{name} rhat bulk")
        assert_rel!(D.rhat(x, method: :tail), e.rhat_tail, "#{name} rhat tail")
        assert_rel!(D.rhat(x), e.rhat, "#{name} rhat")

        [q5, q50, q95] = D.quantile(x, [0.05, 0.5, 0.95])
        assert_rel!(q5, e.q5, "#{name} q5")
        assert_rel!(q50, e.q50, "#{name} q50")
        assert_rel!(q95, e.q95, "#{name} q95")

        # The summary row, from nested lists rather than an Mx array.
        [row] = D.summary(theta: Mx.to_list(x))
        assert row.name == :theta

        for k <- [:mean, :sd, :q5, :q50, :q95, :ess_bulk, :ess_tail, :rhat] do
          assert_rel!(Map.fetch!(row, k), Map.fetch!(e, k), "#{name} summary #{k}")
        end
      end
    end

    test "the poorly mixed case is flagged" do
      c = Enum.find(@cases, &String.starts_with?(&1.name, "poorly mixed"))
      assert D.rhat(Mx.ReferenceCase.decode(c.samples)) > 1.1
    end
  end

  # ---- analytic cases --------------------------------------------------------------

  # Stationary AR(1) chains [4, 1000] with unit marginal variance from Mx's normals.
  defp ar1(seed, phi, chains \\ 4, draws \\ 1000) do
    e = Mx.Random.normal(Mx.Random.key(seed), shape: {chains, draws}, type: :f64) |> Mx.to_list()
    s = :math.sqrt(1 - phi * phi)

    Enum.map(e, fn [e0 | rest] ->
      rest |> Enum.scan(e0, fn et, prev -> phi * prev + s * et end) |> then(&[e0 | &1])
    end)
  end

  # The true ESS of the mean of an AR(1) chain is S(1 - φ)/(1 + φ). Over 200 simulated
  # replicates (numpy, 4 x 1000, generate_diagnostics.py's functions) the bulk estimator's
  # ratio to it has mean 0.984, 1.000, 1.021 and sd 0.048, 0.080, 0.168 for φ = 0, 0.5,
  # 0.9; the mean of 8 replicates has sd 0.017, 0.028, 0.059: bounds are 4 sd plus |bias|.
  for {phi, tol} <- [{0.0, 0.09}, {0.5, 0.12}, {0.9, 0.26}] do
    @phi phi
    @tol tol
    test "bulk and basic ESS of AR(1) chains with phi #{phi} average S (1 - phi)/(1 + phi)" do
      target = 4000 * (1 - @phi) / (1 + @phi)
      runs = Enum.map(1..8, &ar1(1000 + &1, @phi))

      for method <- [:bulk, :basic] do
        ratio = (runs |> Enum.map(&D.ess(&1, method: method)) |> Enum.sum()) / 8 / target
        assert abs(ratio - 1) < @tol, "#{method} ESS / target = #{ratio} for phi #{@phi}"
      end
    end
  end

  test "i.i.d. draws: R-hat within 1.01 of 1 and tail ESS near S" do
    x = ar1(7, 0.0)
    assert abs(D.rhat(x) - 1) < 0.01
    # The tail indicators are Bernoulli(0.05) sequences, i.i.d. here: same sampling sd scale.
    assert abs(D.ess(x, method: :tail) / 4000 - 1) < 0.2
  end

  test "rank normalization makes bulk/tail ESS and bulk R-hat invariant under monotone maps" do
    x = ar1(11, 0.7)
    y = Enum.map(x, fn c -> Enum.map(c, &:math.exp(3 * &1)) end)
    assert D.ess(x) == D.ess(y)
    assert D.ess(x, method: :tail) == D.ess(y, method: :tail)
    assert D.rhat(x, method: :bulk) == D.rhat(y, method: :bulk)
    # The unnormalized ESS is not invariant: the skewed draws change it.
    refute D.ess(x, method: :basic) == D.ess(y, method: :basic)
  end

  test "chains stuck in different places give a large R-hat, a scale difference a large tail R-hat" do
    [a, b, c, d] = ar1(21, 0.3)
    shifted = [a, b, c, Enum.map(d, &(&1 + 3.0))]
    assert D.rhat(shifted) > 1.1
    assert D.ess(shifted) < 100

    # Same location, one chain 4x wider: the bulk misses it, the folded draws see it.
    wide = [a, b, c, Enum.map(d, &(&1 * 4.0))]
    assert D.rhat(wide, method: :tail) > 1.1
    assert D.rhat(wide) == D.rhat(wide, method: :tail)
  end

  # ---- inputs and edge cases ---------------------------------------------------------

  test "one chain as [draws], as [[draws]] and as an Mx array agree" do
    [c | _] = ar1(3, 0.4)
    expected = D.ess(c)
    assert D.ess([c]) == expected
    assert D.ess(Mx.tensor(c, type: :f64)) == expected
    assert D.rhat([c]) == D.rhat(Mx.tensor([c], type: :f64))
  end

  test "integers are accepted; constant draws give :nan" do
    assert D.quantile([1, 2, 3, 4], 0.5) == 2.5
    assert D.ess([[1, 1, 1, 1], [1, 1, 1, 1]]) == :nan
    assert D.rhat([2.0, 2.0, 2.0, 2.0, 2.0]) == :nan

    assert [%{ess_bulk: :nan, ess_tail: :nan, rhat: :nan, mean: 2.0, sd: 0.0}] =
             D.summary(%{c: [2, 2, 2, 2]})
  end

  test "summary keeps keyword order and sorts map keys" do
    x = ar1(5, 0.2)
    assert Enum.map(D.summary(b: x, a: x), & &1.name) == [:b, :a]
    assert Enum.map(D.summary(%{b: x, a: x}), & &1.name) == [:a, :b]
  end

  test "bad input raises with a message saying what to fix" do
    assert_raise ArgumentError, ~r/at least 4 draws/, fn -> D.ess([1.0, 2.0, 3.0]) end
    assert_raise ArgumentError, ~r/chain 1 does not/, fn -> D.rhat([[1, 2, 3, 4], [1, 2, 3]]) end
    assert_raise ArgumentError, ~r/shape \{2, 2, 2\}/, fn -> D.ess(Mx.iota({2, 2, 2})) end

    assert_raise ArgumentError, ~r/finite numbers; chain 0 holds :nan/, fn ->
      D.ess([1.0, :nan, 2.0, 3.0])
    end

    assert_raise ArgumentError, ~r/unknown method :fast/, fn ->
      D.ess([1, 2, 3, 4], method: :fast)
    end

    assert_raise ArgumentError, ~r/unknown method :split/, fn ->
      D.rhat([1, 2, 3, 4], method: :split)
    end

    assert_raise ArgumentError, ~r/in \[0, 1\], got 1.5/, fn -> D.quantile([1, 2], 1.5) end
    assert_raise ArgumentError, ~r/non-empty/, fn -> D.ess([]) end
    assert_raise ArgumentError, ~r/name => samples/, fn -> D.summary(:x) end
  end
end
