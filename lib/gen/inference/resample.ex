defmodule Gen.Inference.Resample do
  @moduledoc """
  Resampling schemes for particle methods: pure functions of unnormalized
  log weights (an Mx `[n]` array or a list of numbers) and a key, each
  returning a list of `n` ancestor indices in `0..n-1`, in ascending order.

    * `multinomial/2` — n independent draws from the categorical of the weights
    * `systematic/2` — one uniform u, points (u + i)/n against the cumulative weights
    * `residual/2` — ⌊n·wᵢ⌋ copies of each, the rest multinomial on the residuals

  All three are unbiased (E[count of i] = n·wᵢ); systematic keeps every
  count within one of n·wᵢ, residual keeps at least ⌊n·wᵢ⌋ copies.
  """

  @type log_weights :: Mx.t() | [number()]

  @doc """
  Multinomial resampling: `n` independent categorical draws.

      iex> Gen.Inference.Resample.multinomial([0.0, :math.log(3.0)], Mx.Random.key(0)) |> length()
      2
      iex> Gen.Inference.Resample.multinomial([:neg_infinity, 0.0, :neg_infinity], Mx.Random.key(1))
      [1, 1, 1]
  """
  @spec multinomial(log_weights(), Mx.t()) :: [non_neg_integer()]
  def multinomial(log_weights, key) do
    w = normalized!(log_weights, "multinomial")
    draws(w, length(w), key)
  end

  @doc """
  `count` independent categorical draws from the normalized weights, in
  ascending order (conditional SMC draws n − 1 ancestors this way, the
  reference particle keeping its place).

      iex> Gen.Inference.Resample.multinomial([:neg_infinity, 0.0], Mx.Random.key(0), 3)
      [1, 1, 1]
      iex> Gen.Inference.Resample.multinomial([0.0, 0.0], Mx.Random.key(0), 0)
      []
  """
  @spec multinomial(log_weights(), Mx.t(), non_neg_integer()) :: [non_neg_integer()]
  def multinomial(log_weights, key, count) when is_integer(count) and count >= 0 do
    w = normalized!(log_weights, "multinomial")
    if count == 0, do: [], else: draws(w, count, key)
  end

  def multinomial(_log_weights, _key, count) do
    raise ArgumentError,
          "Gen.Inference.Resample.multinomial/3: count must be a non-negative integer (the number of draws), got #{inspect(count)}"
  end

  @doc """
  Systematic resampling: one uniform u on [0, 1); particle i is copied once
  for every point (u + j)/n, j = 0..n-1, falling in its cumulative-weight
  interval.

      iex> Gen.Inference.Resample.systematic([0.0, 0.0, 0.0, 0.0], Mx.Random.key(0))
      [0, 1, 2, 3]
      iex> Gen.Inference.Resample.systematic([:math.log(3.0), :neg_infinity, 0.0, :neg_infinity], Mx.Random.key(2))
      [0, 0, 0, 2]
  """
  @spec systematic(log_weights(), Mx.t()) :: [non_neg_integer()]
  def systematic(log_weights, key) do
    w = normalized!(log_weights, "systematic")
    n = length(w)
    u = Mx.Random.uniform(key, type: :f64) |> Mx.to_number()
    points = for j <- 0..(n - 1), do: (u + j) / n
    walk(points, cumulative(w), 0, [])
  end

  @doc """
  Residual resampling: ⌊n·wᵢ⌋ deterministic copies of particle i, then the
  remaining R = n − Σ⌊n·wᵢ⌋ drawn multinomially with probabilities
  proportional to n·wᵢ − ⌊n·wᵢ⌋.

      iex> Gen.Inference.Resample.residual([:math.log(3.0), :neg_infinity, 0.0, :neg_infinity], Mx.Random.key(3))
      [0, 0, 0, 2]
  """
  @spec residual(log_weights(), Mx.t()) :: [non_neg_integer()]
  def residual(log_weights, key) do
    w = normalized!(log_weights, "residual")
    n = length(w)
    scaled = Enum.map(w, &(&1 * n))
    floors = Enum.map(scaled, &trunc(:math.floor(&1)))
    fixed = floors |> Enum.with_index() |> Enum.flat_map(fn {c, i} -> List.duplicate(i, c) end)
    r = n - Enum.sum(floors)

    rest =
      if r > 0 do
        res = Enum.zip_with(scaled, floors, fn s, f -> max(s - f, 0.0) end)
        total = Enum.sum(res)
        draws(Enum.map(res, &(&1 / total)), r, key)
      else
        []
      end

    Enum.sort(fixed ++ rest)
  end

  @doc """
  Kish's effective sample size 1 / Σ w̄ᵢ² of the normalized weights.

      iex> Gen.Inference.Resample.ess([0.0, 0.0, 0.0, 0.0])
      4.0
      iex> Gen.Inference.Resample.ess([0.0, :neg_infinity])
      1.0
  """
  @spec ess(log_weights()) :: float()
  def ess(log_weights) do
    w = normalized!(log_weights, "ess")
    1.0 / Enum.reduce(w, 0.0, fn x, acc -> acc + x * x end)
  end

  # n categorical draws from probabilities w (sorted), by inverting the CDF at n sorted uniforms.
  defp draws(w, n, key) do
    us = Mx.Random.uniform(key, shape: {n}, type: :f64) |> Mx.to_list() |> Enum.sort()
    walk(us, cumulative(w), 0, [])
  end

  defp cumulative(w) do
    {cs, _} = Enum.map_reduce(w, 0.0, fn x, acc -> {acc + x, acc + x} end)
    # Rounding can leave the last sum just under 1: pin it so every point in [0, 1) lands.
    List.replace_at(cs, -1, 1.0)
  end

  # Points ascending; index i covers [c_{i-1}, c_i).
  defp walk([], _cs, _i, acc), do: Enum.reverse(acc)

  defp walk([p | ps] = points, [c | cs], i, acc) do
    if p < c or cs == [], do: walk(ps, [c | cs], i, [i | acc]), else: walk(points, cs, i + 1, acc)
  end

  defp normalized!(log_weights, fun) do
    lw =
      case log_weights do
        %Mx.Array{} = a ->
          if tuple_size(Mx.shape(a)) != 1,
            do:
              raise(
                ArgumentError,
                "Gen.Inference.Resample.#{fun}: log weights must be a rank-1 array, got shape #{inspect(Mx.shape(a))}"
              )

          a |> Mx.as_type(:f64) |> Mx.to_list()

        l when is_list(l) and l != [] ->
          l

        other ->
          raise ArgumentError,
                "Gen.Inference.Resample.#{fun}: log weights must be a non-empty list or a rank-1 Mx array, got #{inspect(other)}"
      end

    lw = Enum.map(lw, &to_log!(&1, fun))
    finite = Enum.filter(lw, &is_float/1)
    m = if finite == [], do: :neg_infinity, else: Enum.max(finite)

    if m == :neg_infinity do
      raise ArgumentError,
            "Gen.Inference.Resample.#{fun}: every log weight is -infinity (no particle has positive weight); check the observations against the model"
    end

    ws = Enum.map(lw, fn x -> if x == :neg_infinity, do: 0.0, else: :math.exp(x - m) end)
    total = Enum.sum(ws)
    Enum.map(ws, &(&1 / total))
  end

  defp to_log!(x, _fun) when is_number(x), do: x * 1.0
  defp to_log!(:neg_infinity, _fun), do: :neg_infinity

  defp to_log!(x, fun) do
    raise ArgumentError,
          "Gen.Inference.Resample.#{fun}: log weights must be numbers or -infinity, got #{inspect(x)} (NaN or +infinity means a broken weight upstream)"
  end
end
