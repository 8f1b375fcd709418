defmodule Mx.NN.RoPE do
  @moduledoc """
  Rotary positional encoding (MLX's `nn.RoPE`) of `x` with shape
  `{..., length, features}`: the first `dims:` features are rotated by
  angles `position · base^(-2i/dims)`, where position is `(offset + t) ·
  scale`; the rest pass through. `traditional: true` rotates adjacent pairs
  `(x[2i], x[2i+1])`; the default rotates `(x[i], x[i + dims/2])` (the
  halves layout of Llama checkpoints). Options: `dims:` (required, even),
  `traditional:` (false), `base:` (10000), `scale:` (1.0), `offset:` (0),
  `freqs:` (nil). No parameters.

  `freqs:` (as in MLX's `mx.fast.rope`) replaces the base: an array of
  `dims/2` positive periods, the angles being `position / freqs[i]`
  (`base^(2i/dims)` is the default's period); mlx-lm's Llama 3 scaling
  (`Mx.NN.Llama`) passes its rescaled periods this way. Give `base:` or
  `freqs:`, not both.

      iex> x = Mx.tensor([[1.0, 0.0], [1.0, 0.0]])
      iex> Mx.NN.RoPE.apply(%{}, x, dims: 2) |> Mx.to_list() |> Enum.map(fn r -> Enum.map(r, &Float.round(&1, 4)) end)
      [[1.0, 0.0], [0.5403, 0.8415]]
      iex> Mx.NN.RoPE.apply(%{}, x, dims: 2, freqs: Mx.tensor([2.0])) |> Mx.to_list() |> Enum.map(fn r -> Enum.map(r, &Float.round(&1, 4)) end)
      [[1.0, 0.0], [0.8776, 0.4794]]
  """

  @keys [:dims, traditional: false, base: 10_000.0, scale: 1.0, offset: 0, freqs: nil]

  @doc "No parameters: `%{}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    Mx.NN.layer_opts!(opts, @keys, "Mx.NN.RoPE.init")
    %{}
  end

  @doc "Rotates `x` (see the module doc)."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(_params, x, opts \\ []) do
    if Keyword.has_key?(opts, :base) and opts[:freqs] != nil do
      raise ArgumentError,
            "Mx.NN.RoPE.apply: give base: or freqs:, not both (freqs: replaces the base's periods)"
    end

    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.RoPE.apply")
    dims = Mx.NN.required!(opts, :dims, "Mx.NN.RoPE.apply")
    r = Mx.rank(x)
    {len, feats} = {elem(x.shape, r - 2), elem(x.shape, r - 1)}

    if rem(dims, 2) != 0 or dims > feats do
      raise ArgumentError,
            "Mx.NN.RoPE.apply: dims (#{dims}) must be even and at most the #{feats} features of #{Mx.describe(x)}"
    end

    half = div(dims, 2)
    type = if Mx.Type.float?(x.type), do: x.type, else: :f32

    freqs = inverse_periods(opts[:freqs], half, dims, opts[:base])

    pos =
      Mx.arange(0, len, 1, type: :f64) |> Mx.add(opts[:offset]) |> Mx.multiply(opts[:scale] * 1.0)

    theta = Mx.multiply(Mx.reshape(pos, {len, 1}), Mx.reshape(freqs, {1, half}))
    {cos, sin} = {Mx.as_type(Mx.cos(theta), type), Mx.as_type(Mx.sin(theta), type)}
    rot = Mx.slice_axis(x, 0, dims, r - 1)

    {x1, x2} =
      if opts[:traditional],
        do: {Mx.slice_axis(rot, 0, half, r - 1, 2), Mx.slice_axis(rot, 1, half, r - 1, 2)},
        else: {Mx.slice_axis(rot, 0, half, r - 1), Mx.slice_axis(rot, half, half, r - 1)}

    y1 = Mx.subtract(Mx.multiply(x1, cos), Mx.multiply(x2, sin))
    y2 = Mx.add(Mx.multiply(x1, sin), Mx.multiply(x2, cos))

    rotated =
      if opts[:traditional],
        do:
          Mx.stack([y1, y2], axis: r)
          |> Mx.reshape(Tuple.delete_at(rot.shape, r - 1) |> Tuple.append(dims)),
        else: Mx.concatenate([y1, y2], axis: r - 1)

    if dims == feats,
      do: rotated,
      else: Mx.concatenate([rotated, Mx.slice_axis(x, dims, feats - dims, r - 1)], axis: r - 1)
  end

  # The angle per position of each rotated pair, in f64: base^(-2i/dims), or 1 / freqs[i].
  defp inverse_periods(nil, half, dims, base),
    do:
      Mx.arange(0, half, 1, type: :f64) |> Mx.multiply(-2.0 / dims * :math.log(base)) |> Mx.exp()

  defp inverse_periods(%Mx.Array{shape: {half}, type: t} = freqs, half, _dims, _base)
       when t in [:f16, :bf16, :f32, :f64],
       do: Mx.divide(1.0, Mx.as_type(freqs, :f64))

  defp inverse_periods(freqs, half, dims, _base) do
    raise ArgumentError,
          "Mx.NN.RoPE.apply: freqs: must be a float array of shape {#{half}} (dims #{dims} / 2), got #{describe(freqs)}"
  end

  defp describe(%Mx.Array{} = a), do: Mx.describe(a)
  defp describe(other), do: inspect(other)
end

defmodule Mx.NN.SinusoidalPositionalEncoding do
  @moduledoc """
  Sinusoidal features of positions (MLX's `nn.SinusoidalPositionalEncoding`):
  for `x` of any shape, `{..., dims}` holding `[sin(x σ), cos(x σ)]` (cosines
  first with `cos_first: true`), with `dims/2` frequencies σ spaced
  geometrically from `max_freq:` (1.0) down to `min_freq:` (1e-4), times
  2π with `full_turns: true`, and everything multiplied by `scale:`
  (default `√(2/dims)`). Options: `dims:` (required, even, at least 4). No
  parameters.

      iex> y = Mx.NN.SinusoidalPositionalEncoding.apply(%{}, Mx.tensor([0.0]), dims: 4, scale: 1.0)
      iex> Mx.to_list(y)
      [[0.0, 0.0, 1.0, 1.0]]
  """

  @keys [:dims, min_freq: 1.0e-4, max_freq: 1.0, scale: nil, cos_first: false, full_turns: false]

  @doc "No parameters: `%{}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    Mx.NN.layer_opts!(opts, @keys, "Mx.NN.SinusoidalPositionalEncoding.init")
    %{}
  end

  @doc "The encoding of positions `x` (see the module doc)."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(_params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.SinusoidalPositionalEncoding.apply")
    dims = Mx.NN.required!(opts, :dims, "Mx.NN.SinusoidalPositionalEncoding.apply")

    if rem(dims, 2) != 0 or dims < 4 do
      raise ArgumentError,
            "Mx.NN.SinusoidalPositionalEncoding.apply: dims must be even and at least 4, got #{dims}"
    end

    half = div(dims, 2)
    type = if Mx.Type.float?(x.type), do: x.type, else: :f32
    {lo, hi} = {:math.log(opts[:min_freq]), :math.log(opts[:max_freq])}
    one_zero = Mx.subtract(1.0, Mx.divide(Mx.arange(0, half, 1, type: :f64), half - 1))
    sigmas = one_zero |> Mx.multiply(hi - lo) |> Mx.add(lo) |> Mx.exp()
    sigmas = if opts[:full_turns], do: Mx.multiply(sigmas, 2 * :math.pi()), else: sigmas
    y = Mx.multiply(Mx.new_axis(x, Mx.rank(x)), Mx.as_type(sigmas, type))
    parts = if opts[:cos_first], do: [Mx.cos(y), Mx.sin(y)], else: [Mx.sin(y), Mx.cos(y)]
    scale = opts[:scale] || :math.sqrt(2 / dims)
    parts |> Mx.concatenate(axis: -1) |> Mx.multiply(scale)
  end
end

defmodule Mx.NN.ALiBi do
  @moduledoc """
  Attention with linear biases (MLX's `nn.ALiBi`): adds to attention
  scores `{batch, heads, Lq, Lk}` the bias `-slope_h · |i + offset - j|`,
  with slopes `2^(-8(h+1)/heads)`. Options: `offset:` (default 0, the
  position of the first query), `mask:` (an additive float array, added
  too). No parameters.

      iex> s = Mx.zeros({1, 1, 1, 3})
      iex> Mx.NN.ALiBi.apply(%{}, s, offset: 2) |> Mx.to_list()
      [[[[-0.0078125, -0.00390625, 0.0]]]]
  """

  @keys [offset: 0, mask: nil]

  @doc "No parameters: `%{}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    Mx.NN.layer_opts!(opts, @keys, "Mx.NN.ALiBi.init")
    %{}
  end

  @doc "The scores plus the ALiBi bias (and `mask:`)."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(_params, scores, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.ALiBi.apply")

    unless Mx.rank(scores) == 4 do
      raise ArgumentError,
            "Mx.NN.ALiBi.apply: scores must be {batch, heads, Lq, Lk}, got #{Mx.describe(scores)}"
    end

    {_, h, lq, lk} = scores.shape
    bias = matrix(lq, lk, h, opts[:offset]) |> Mx.as_type(scores.type)
    out = Mx.add(scores, bias)
    if m = opts[:mask], do: Mx.add(out, m), else: out
  end

  @doc """
  The bias `{1, heads, lq, lk}` in `f64`.

      iex> Mx.NN.ALiBi.matrix(2, 2, 1) |> Mx.to_list()
      [[[[0.0, -0.00390625], [-0.00390625, 0.0]]]]
  """
  @spec matrix(pos_integer(), pos_integer(), pos_integer(), non_neg_integer()) :: Mx.Array.t()
  def matrix(lq, lk, heads, offset \\ 0) do
    qpos = Mx.arange(offset, offset + lq, 1, type: :f64) |> Mx.reshape({lq, 1})
    kpos = Mx.arange(0, lk, 1, type: :f64) |> Mx.reshape({1, lk})
    dist = qpos |> Mx.subtract(kpos) |> Mx.abs() |> Mx.reshape({1, 1, lq, lk})
    base = :math.pow(2, 8 / heads)

    slopes =
      Mx.tensor(for(i <- 1..heads, do: 1 / :math.pow(base, i)), type: :f64)
      |> Mx.reshape({1, heads, 1, 1})

    # 0 - d·slope rather than -(d·slope): the diagonal is +0.0, not -0.0.
    Mx.subtract(0.0, Mx.multiply(dist, slopes))
  end
end
