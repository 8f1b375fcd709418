defmodule Gen.SBC do
  @moduledoc """
  Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018): draw
  θ̃ from the prior and data from the model, run the sampler on that data, and record the rank
  of θ̃ among L posterior draws. A correct sampler makes the rank uniform on 0..L.
  """

  @doc """
  Ranks over `m` replications. `simulate.(key)` returns `{prior_params, data}` (params a map
  name => float); `posterior.(data, key)` returns `l` draws as a list of maps name => float.
  Returns `%{name => [rank]}`; replication i uses `Mx.Random.fold_in(key, i)`.
  """
  def ranks(simulate, posterior, m, l, key) do
    per_rep =
      for i <- 0..(m - 1) do
        [k_sim, k_post] =
          key |> Mx.Random.fold_in(i) |> Mx.Random.split() |> then(&[&1[0], &1[1]])

        {theta, data} = simulate.(k_sim)
        draws = posterior.(data, k_post)

        if length(draws) != l do
          raise ArgumentError,
                "Gen.SBC.ranks: the posterior returned #{length(draws)} draws, expected #{l}"
        end

        Map.new(theta, fn {name, v} -> {name, Enum.count(draws, &(&1[name] < v))} end)
      end

    per_rep |> hd() |> Map.keys() |> Map.new(fn name -> {name, Enum.map(per_rep, & &1[name])} end)
  end

  @doc """
  Pearson's chi-square statistic of the ranks (0..l) against the uniform, in `bins` equal bins
  of (l + 1)/bins ranks each (bins must divide l + 1).
  """
  def chi_square(ranks, l, bins) do
    unless rem(l + 1, bins) == 0,
      do: raise(ArgumentError, "Gen.SBC.chi_square: bins must divide l + 1")

    width = div(l + 1, bins)
    counts = Enum.frequencies_by(ranks, &div(&1, width))
    expected = length(ranks) / bins

    Enum.sum(
      for b <- 0..(bins - 1), do: :math.pow(Map.get(counts, b, 0) - expected, 2) / expected
    )
  end
end
