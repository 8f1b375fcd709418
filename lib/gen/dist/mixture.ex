defmodule Gen.Dist.Mixture do
  @moduledoc """
  A finite mixture: `components` (a non-empty list of distribution values
  of one kind, e.g. all `Gen.Dist.normal/2`) with log-weights `log_weights`
  (`{K}`, normalized here). The log-density is
  `logsumexp_i(log w_i + logpdf(component_i, x))`. A draw picks a component
  by `Mx.Random.categorical/3` and selects its draw among every component's
  draw (one graph, no sequential fallback); not reparameterized. Any real
  log-weights are valid (`-Inf` for a zero weight); the components follow
  `Gen.Dist`'s rule for their own parameters.

      iex> d = Gen.Dist.mixture([Gen.Dist.normal(-1.0, 1.0), Gen.Dist.normal(1.0, 1.0)], Mx.log(Mx.tensor([0.5, 0.5], type: :f64)))
      iex> Gen.Dist.logpdf(d, 0.0) |> Mx.to_number()
      -1.4189385332046727
      iex> Gen.Dist.sample_n(d, Mx.Random.key(0), 3) |> Mx.describe()
      "f64[3]"
  """

  defstruct [:components, :log_weights]
  @type t :: %__MODULE__{components: [Gen.Distribution.t()], log_weights: Mx.t()}

  @doc "A mixture of `components` (one kind) with log-weights `log_weights` (`{K}`)."
  @spec new([Gen.Distribution.t()], Mx.tensor_like()) :: t()
  def new([first | _] = components, log_weights) do
    kinds = components |> Enum.map(&kind/1) |> Enum.uniq()

    unless match?([_], kinds) and Gen.Distribution.impl_for(first) do
      raise ArgumentError,
            "Gen.Dist.mixture: components must be distributions of one kind, got #{inspect(kinds)}"
    end

    lw = Gen.Dist.param!(log_weights, "mixture", "log_weights")

    unless Mx.shape(lw) == {length(components)} do
      raise ArgumentError,
            "Gen.Dist.mixture: log_weights must have shape {#{length(components)}} (one per component), got #{Mx.describe(lw)}"
    end

    %__MODULE__{components: components, log_weights: lw}
  end

  def new(components, _log_weights) do
    raise ArgumentError,
          "Gen.Dist.mixture: components must be a non-empty list of distributions, got #{inspect(components)}"
  end

  defp kind(%mod{}), do: mod
  defp kind(other), do: other

  defimpl Gen.Distribution do
    def sample(d, key) do
      [kc | keys] = split(key, d)

      choose(
        Mx.Random.categorical(kc, d.log_weights),
        Enum.zip_with(d.components, keys, &Gen.Distribution.sample/2)
      )
    end

    def sample_n(d, key, n) do
      [kc | keys] = split(key, d)
      draws = Enum.zip_with(d.components, keys, &Gen.Distribution.sample_n(&1, &2, n))
      choose(Mx.Random.categorical(kc, d.log_weights, num_samples: n), draws)
    end

    defp split(key, d) do
      keys = Mx.Random.split(key, length(d.components) + 1)
      for i <- 0..length(d.components), do: keys[i]
    end

    # idx has the draws' leading axes; pad it with unit axes to select whole events.
    defp choose(idx, [first | _] = draws) do
      extra = Mx.rank(first) - Mx.rank(idx)

      idx =
        Mx.reshape(
          idx,
          (Tuple.to_list(Mx.shape(idx)) ++ List.duplicate(1, extra)) |> List.to_tuple()
        )

      draws
      |> Enum.with_index()
      |> Enum.reduce(first, fn {x, i}, acc -> Mx.select(Mx.equal(idx, i), x, acc) end)
    end

    def logpdf(d, value) do
      lw = Mx.subtract(d.log_weights, Mx.logsumexp(d.log_weights))
      lps = Enum.map(d.components, &Gen.Distribution.logpdf(&1, value))
      stacked = Mx.stack(lps)

      w =
        Mx.reshape(
          lw,
          (Tuple.to_list(Mx.shape(lw)) ++ List.duplicate(1, Mx.rank(stacked) - 1))
          |> List.to_tuple()
        )

      Mx.logsumexp(Mx.add(stacked, w), axes: [0])
    end

    def reparameterized?(_), do: false

    # Components of one kind share a support; intervals with other bounds join into their hull.
    def support(d) do
      case d.components |> Enum.map(&Gen.Distribution.support/1) |> Enum.uniq() do
        [s] ->
          s

        [{:interval, _, _} | _] = ss ->
          {:interval, ss |> Enum.map(&elem(&1, 1)) |> Enum.reduce(&Mx.min/2),
           ss |> Enum.map(&elem(&1, 2)) |> Enum.reduce(&Mx.max/2)}
      end
    end
  end
end
