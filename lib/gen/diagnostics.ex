defmodule Gen.Diagnostics do
  @moduledoc """
  Convergence diagnostics for MCMC draws: rank-normalized bulk and tail
  effective sample size, rank-normalized split R-hat, sample quantiles and a
  per-parameter summary table, as Vehtari, Gelman, Simpson, Carpenter and
  Bürkner (2021), "Rank-normalization, folding, and localization: An improved
  R-hat for assessing convergence of MCMC" define them and Stan and ArviZ
  compute them.

  Samples are `[chains, draws]` (an Mx array or nested lists) or `[draws]` for
  a single chain; every result is a float. Where the paper leaves a convention
  open this module follows Stan/ArviZ:

    * chains are split in halves; with an odd draw count the middle draw is dropped;
    * ranks are pooled over all split chains, ties get their average rank, and
      the normal scores are Φ⁻¹((r - 3/8) / (S + 1/4));
    * autocovariances are the biased (divide by n) estimates, combined over
      chains as in the paper's eq. (10), truncated by Geyer's initial positive
      sequence and made monotone (Geyer's initial monotone sequence), with the
      first positive even lag past the truncation added (Stan's improvement);
      τ is floored at 1/log10(S);
    * quantiles interpolate linearly between order statistics (type 7, numpy's default).

  Samples whose values are all equal have no defined ESS or R-hat: those
  functions return `:nan` for them.

      iex> draws = [[0.1, 0.3, 0.6, 0.8, 0.7, 0.4, 0.2, -0.1, -0.3, -0.2], [0.5, 0.2, 0.4, -0.1, -0.4, -0.6, -0.2, 0.1, 0.3, 0.9]]
      iex> Gen.Diagnostics.quantile(draws, [0.05, 0.5, 0.95]) |> Enum.map(&Float.round(&1, 4))
      [-0.41, 0.2, 0.805]
      iex> Gen.Diagnostics.ess(draws) |> Float.round(4)
      13.1232
      iex> Gen.Diagnostics.rhat(draws) |> Float.round(4)
      1.0264
  """

  @typedoc "Draws as `[chains, draws]` or `[draws]`: an Mx array or (nested) lists of numbers."
  @type samples :: Mx.Array.t() | [number()] | [[number()]]

  @typedoc "A float, or `:nan` where the diagnostic is undefined (all draws equal)."
  @type stat :: float() | :nan

  # ---- public API ---------------------------------------------------------------------

  @doc """
  The effective sample size of `samples`.

  Options: `method:` is `:bulk` (default; rank-normalized split chains, the
  paper's ESS_bulk), `:tail` (the smaller of the ESS of the indicators
  I(θ ≤ q5%) and I(θ ≤ q95%), the paper's ESS_tail) or `:basic` (split chains,
  no rank normalization: the classic ESS of the mean).

      iex> draws = [[0.1, 0.3, 0.6, 0.8, 0.7, 0.4, 0.2, -0.1, -0.3, -0.2], [0.5, 0.2, 0.4, -0.1, -0.4, -0.6, -0.2, 0.1, 0.3, 0.9]]
      iex> Gen.Diagnostics.ess(draws) |> Float.round(4)
      13.1232
      iex> Gen.Diagnostics.ess(draws, method: :tail) |> Float.round(4)
      21.7391
      iex> Gen.Diagnostics.ess(draws, method: :basic) |> Float.round(4)
      11.9955
      iex> Gen.Diagnostics.ess([1.0, 1.0, 1.0, 1.0])
      :nan
  """
  @spec ess(samples(), keyword()) :: stat()
  def ess(samples, opts \\ []) do
    chains = chains!(samples, "ess")
    Mx.Opts.validate!(opts, [:method], "Gen.Diagnostics.ess")

    case Keyword.get(opts, :method, :bulk) do
      :bulk ->
        ess_bulk(chains)

      :tail ->
        ess_tail(chains)

      :basic ->
        chains |> split() |> ess_of_split()

      other ->
        raise ArgumentError, "[ess] unknown method #{inspect(other)}; use :bulk, :tail or :basic"
    end
  end

  @doc """
  The split R-hat of `samples`.

  Options: `method:` is `:rank` (default; the paper's R̂, the larger of the
  bulk and tail values), `:bulk` (split R-hat of the rank-normalized draws),
  `:tail` (of the rank-normalized folded draws |θ - median θ|) or `:basic`
  (split R-hat of the draws themselves). Values above 1.01 suggest the chains
  have not mixed.

      iex> mixed = [[0.1, 0.3, 0.6, 0.8, 0.7, 0.4, 0.2, -0.1, -0.3, -0.2], [0.5, 0.2, 0.4, -0.1, -0.4, -0.6, -0.2, 0.1, 0.3, 0.9]]
      iex> Gen.Diagnostics.rhat(mixed, method: :basic) |> Float.round(4)
      1.0538
      iex> stuck = [[0.1, 0.2, 0.0, 0.1, 0.3, 0.2], [5.1, 5.0, 5.2, 5.1, 4.9, 5.0]]
      iex> Gen.Diagnostics.rhat(stuck) > 1.1
      true
  """
  @spec rhat(samples(), keyword()) :: stat()
  def rhat(samples, opts \\ []) do
    chains = chains!(samples, "rhat")
    Mx.Opts.validate!(opts, [:method], "Gen.Diagnostics.rhat")

    case Keyword.get(opts, :method, :rank) do
      :rank ->
        max_stat(rhat_bulk(chains), rhat_tail(chains))

      :bulk ->
        rhat_bulk(chains)

      :tail ->
        rhat_tail(chains)

      :basic ->
        chains |> split() |> rhat_of_split()

      other ->
        raise ArgumentError,
              "[rhat] unknown method #{inspect(other)}; use :rank, :bulk, :tail or :basic"
    end
  end

  @doc """
  Sample quantiles of all draws pooled, at probability `q` (a number) or at each
  of a list of probabilities: linear interpolation between order statistics,
  type 7 of Hyndman and Fan, numpy's default.

      iex> Gen.Diagnostics.quantile([4.0, 1.0, 3.0, 2.0], 0.25)
      1.75
      iex> Gen.Diagnostics.quantile([[1, 2], [3, 4], [5, 6]], [0.0, 0.5, 1.0])
      [1.0, 3.5, 6.0]
  """
  @spec quantile(samples(), number() | [number()]) :: float() | [float()]
  def quantile(samples, q) do
    sorted = samples |> chains!("quantile", 1) |> List.flatten() |> Enum.sort() |> List.to_tuple()

    case q do
      qs when is_list(qs) -> Enum.map(qs, &quantile_sorted(sorted, check_prob!(&1)))
      q -> quantile_sorted(sorted, check_prob!(q))
    end
  end

  @doc """
  A summary table: one map per parameter with the mean, the standard deviation
  (n - 1 in the denominator), the 5 %, 50 % and 95 % quantiles, bulk and tail
  ESS and R-hat (`rhat/2`'s default), over all chains pooled.

  `params` is a map or keyword list from parameter names to samples (maps are
  listed in key order); rows come back in that order with the name under `:name`.

      iex> draws = [[0.1, 0.3, 0.6, 0.8, 0.7, 0.4, 0.2, -0.1, -0.3, -0.2], [0.5, 0.2, 0.4, -0.1, -0.4, -0.6, -0.2, 0.1, 0.3, 0.9]]
      iex> [row] = Gen.Diagnostics.summary(%{mu: draws})
      iex> {row.name, Float.round(row.mean, 4), row.q50, Float.round(row.ess_bulk, 2)}
      {:mu, 0.18, 0.2, 13.12}
  """
  @spec summary(%{optional(term()) => samples()} | [{term(), samples()}]) :: [map()]
  def summary(params) when is_map(params) or is_list(params) do
    rows = if is_map(params), do: Enum.sort_by(params, &elem(&1, 0)), else: params

    Enum.map(rows, fn
      {name, samples} ->
        summary_row(name, chains!(samples, "summary of #{inspect(name)}"))

      other ->
        raise ArgumentError, "[summary] expected {name, samples} pairs, got #{inspect(other)}"
    end)
  end

  def summary(other) do
    raise ArgumentError,
          "[summary] expected a map or keyword list of name => samples, got #{inspect(other)}"
  end

  # ---- the diagnostics on chains (lists of float lists) -------------------------------

  defp summary_row(name, chains) do
    all = List.flatten(chains)
    n = length(all)
    mean = Enum.sum(all) / n

    sd =
      if n > 1,
        do: :math.sqrt(Enum.reduce(all, 0.0, &(&2 + (&1 - mean) * (&1 - mean))) / (n - 1)),
        else: :nan

    sorted = all |> Enum.sort() |> List.to_tuple()

    %{
      name: name,
      mean: mean,
      sd: sd,
      q5: quantile_sorted(sorted, 0.05),
      q50: quantile_sorted(sorted, 0.5),
      q95: quantile_sorted(sorted, 0.95),
      ess_bulk: ess_bulk(chains),
      ess_tail: ess_tail(chains),
      rhat: max_stat(rhat_bulk(chains), rhat_tail(chains))
    }
  end

  defp ess_bulk(chains), do: chains |> split() |> z_scale() |> ess_of_split()
  defp rhat_bulk(chains), do: chains |> split() |> z_scale() |> rhat_of_split()

  # Folding around the median makes R-hat sensitive to chains that differ in scale.
  defp rhat_tail(chains) do
    median = chains |> List.flatten() |> Enum.sort() |> List.to_tuple() |> quantile_sorted(0.5)

    chains
    |> Enum.map(fn c -> Enum.map(c, &abs(&1 - median)) end)
    |> split()
    |> z_scale()
    |> rhat_of_split()
  end

  defp ess_tail(chains) do
    sorted = chains |> List.flatten() |> Enum.sort() |> List.to_tuple()

    [0.05, 0.95]
    |> Enum.map(fn p ->
      q = quantile_sorted(sorted, p)

      chains
      |> Enum.map(fn c -> Enum.map(c, &if(&1 <= q, do: 1.0, else: 0.0)) end)
      |> split()
      |> ess_of_split()
    end)
    |> Enum.reduce(&min_stat/2)
  end

  # Each chain's first and second halves become two chains; an odd middle draw is dropped.
  defp split(chains) do
    Enum.flat_map(chains, fn c ->
      h = div(length(c), 2)
      [Enum.take(c, h), Enum.take(c, -h)]
    end)
  end

  # Normal scores of the pooled fractional ranks (ties averaged), eq. (14) of the paper.
  defp z_scale(chains) do
    flat = List.flatten(chains)
    s = length(flat)

    ranks =
      flat
      |> Enum.with_index()
      |> Enum.sort_by(&elem(&1, 0))
      |> Enum.chunk_by(&elem(&1, 0))
      |> Enum.flat_map_reduce(0, fn group, before ->
        k = length(group)
        rank = before + (k + 1) / 2
        {Enum.map(group, fn {_, i} -> {i, rank} end), before + k}
      end)
      |> elem(0)
      |> Enum.sort()
      |> Enum.map(fn {_, r} -> (r - 0.375) / (s + 0.25) end)

    z = ranks |> Mx.tensor(type: :f64) |> Mx.ndtri() |> Mx.to_flat_list()
    Enum.chunk_every(z, length(hd(chains)))
  end

  # R-hat on split chains: sqrt(var⁺ / W), eq. (4).
  defp rhat_of_split(chains) do
    if constant?(chains) do
      :nan
    else
      {var_plus, w, _means} = variances(chains)
      :math.sqrt(var_plus / w)
    end
  end

  # var⁺ = (n-1)/n W + B/n (eq. 3), W the mean within-chain variance and B/n the
  # variance of the chain means.
  defp variances(chains) do
    n = length(hd(chains))
    means = Enum.map(chains, &mean/1)
    w = Enum.zip_with(chains, means, &(sum_sq(&1, &2) / (n - 1))) |> mean()

    b_over_n =
      if length(chains) > 1, do: sum_sq(means, mean(means)) / (length(chains) - 1), else: 0.0

    {(n - 1) / n * w + b_over_n, w, means}
  end

  # ESS on split chains: eqs. (10)-(13) with Geyer's initial monotone sequence.
  defp ess_of_split(chains) do
    if constant?(chains) do
      :nan
    else
      m = length(chains)
      n = length(hd(chains))
      means = Enum.map(chains, &mean/1)
      centered = Enum.zip_with(chains, means, fn c, mu -> Enum.map(c, &(&1 - mu)) end)
      # W from the lag-0 autocovariance (biased) rescaled to n - 1; var⁺ as in eq. (3).
      w = mean_autocov(centered, n, 0) * n / (n - 1)
      var_plus = w * (n - 1) / n + if(m > 1, do: sum_sq(means, mean(means)) / (m - 1), else: 0.0)
      rho = fn t -> 1.0 - (w - mean_autocov(centered, n, t)) / var_plus end

      rho1 = rho.(1)
      {kept, t, even} = positive_pairs(rho, n, 1, 1.0, rho1, [rho1, 1.0])
      max_t = t - 2
      pairs = kept |> Enum.reverse() |> Enum.take(max_t + 1) |> Enum.chunk_every(2)
      extra = if even > 0, do: even, else: 0.0

      tau = -1.0 + 2.0 * (pairs |> monotone() |> Enum.sum()) + extra
      s = m * n
      s / max(tau, 1 / :math.log10(s))
    end
  end

  # Geyer's initial positive sequence: keep pairs ρ(t+1) + ρ(t+2) while the previous pair is positive.
  defp positive_pairs(rho, n, t, even, odd, kept) do
    if t < n - 3 and even + odd > 0 do
      {e, o} = {rho.(t + 1), rho.(t + 2)}
      kept = if e + o >= 0, do: [o, e | kept], else: kept
      positive_pairs(rho, n, t + 2, e, o, kept)
    else
      {kept, t, even}
    end
  end

  # Initial monotone sequence: no pair sum may exceed the (already capped) one before it.
  defp monotone([]), do: []

  defp monotone([[a, b] | rest]) do
    {capped, _} =
      Enum.map_reduce(rest, a + b, fn [e, o], prev ->
        if e + o > prev, do: {prev, prev}, else: {e + o, e + o}
      end)

    [a + b | capped]
  end

  # Biased autocovariance at lag t, (1/n) Σ x_i x_{i+t}, averaged over the (centered) chains.
  defp mean_autocov(centered, n, t) do
    centered
    |> Enum.map(fn c -> Enum.zip_reduce(c, Enum.drop(c, t), 0.0, &(&3 + &1 * &2)) / n end)
    |> mean()
  end

  defp constant?(chains) do
    [x | rest] = List.flatten(chains)
    Enum.all?(rest, &(&1 == x))
  end

  defp mean(xs), do: Enum.sum(xs) / length(xs)
  defp sum_sq(xs, mu), do: Enum.reduce(xs, 0.0, &(&2 + (&1 - mu) * (&1 - mu)))

  defp max_stat(:nan, _), do: :nan
  defp max_stat(_, :nan), do: :nan
  defp max_stat(a, b), do: max(a, b)
  defp min_stat(:nan, _), do: :nan
  defp min_stat(_, :nan), do: :nan
  defp min_stat(a, b), do: min(a, b)

  # Type 7: h = (N-1)q, linear between order statistics floor(h) and floor(h)+1,
  # with numpy's lerp (from the nearer end) so results match it to the last bit.
  defp quantile_sorted(sorted, q) do
    size = tuple_size(sorted)
    h = (size - 1) * q
    lo = min(trunc(Float.floor(h * 1.0)), size - 1)
    hi = min(lo + 1, size - 1)
    {a, b, t} = {elem(sorted, lo), elem(sorted, hi), h - lo}
    if t >= 0.5, do: b - (b - a) * (1 - t), else: a + (b - a) * t
  end

  defp check_prob!(q) when is_number(q) and q >= 0 and q <= 1, do: q

  defp check_prob!(q) do
    raise ArgumentError, "[quantile] probabilities must be numbers in [0, 1], got #{inspect(q)}"
  end

  # ---- input ----------------------------------------------------------------------------

  # Samples as a list of chains, each a list of floats, all of one length >= min_draws.
  defp chains!(samples, fun, min_draws \\ 4)

  defp chains!(%Mx.Array{} = a, fun, min_draws) do
    case Mx.shape(a) do
      {_} ->
        chains!([Mx.to_list(a)], fun, min_draws)

      {_, _} ->
        chains!(Mx.to_list(a), fun, min_draws)

      shape ->
        raise ArgumentError,
              "[#{fun}] samples must be [chains, draws] or [draws], got an array of shape #{inspect(shape)}"
    end
  end

  defp chains!([x | _] = draws, fun, min_draws) when not is_list(x),
    do: chains!([draws], fun, min_draws)

  defp chains!([c | _] = chains, fun, min_draws) when is_list(c) do
    n = length(c)

    if n < min_draws do
      raise ArgumentError,
            "[#{fun}] needs at least #{min_draws} draws per chain (split chains need two draws each), got #{n}"
    end

    Enum.map(Enum.with_index(chains), fn {chain, i} ->
      if not is_list(chain) or length(chain) != n do
        raise ArgumentError,
              "[#{fun}] every chain must have #{n} draws like the first; chain #{i} does not"
      end

      Enum.map(chain, fn
        x when is_number(x) ->
          x * 1.0

        x ->
          raise ArgumentError,
                "[#{fun}] samples must be finite numbers; chain #{i} holds #{inspect(x)}"
      end)
    end)
  end

  defp chains!(other, fun, _min_draws) do
    raise ArgumentError,
          "[#{fun}] samples must be an Mx array or a non-empty (nested) list of numbers, got #{inspect(other, limit: 5)}"
  end
end
