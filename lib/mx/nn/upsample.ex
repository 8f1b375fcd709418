defmodule Mx.NN.Upsample do
  @moduledoc """
  Upsamples the spatial axes (MLX's `nn.Upsample`), channels last: input
  `{batch, spatial..., channels}` with any number of spatial axes. Each
  spatial size `n` becomes `trunc(scale · n)`. No parameters.

  Options:

    * `scale_factor:` (required) - a positive number for every spatial axis
      or a list with one per axis;
    * `interpolation:` - `:nearest` (default), `:linear` (bilinear,
      trilinear... on more axes) or `:cubic` (Keys' cubic kernel with
      a = -0.75 on the four neighbours, input borders repeated: PyTorch's
      bicubic on two axes); MLX calls it `mode`, a name every layer here
      takes for `:train`/`:eval`; MLX's `antialias:` is not implemented;
    * `align_corners:` - for `:linear` and `:cubic` (default false): when true the first
      and last output positions sit on the first and last input positions,
      output `i` reads input `i · (n - 1)/(m - 1)`; when false the pixel
      centers are aligned, output `i` reads input `(i + 0.5)/scale - 0.5`
      (clamped to the input for `:linear`), as MLX and PyTorch.

  `:nearest` takes, as MLX, input `round((i + 0.5)·n/m - 0.5)` (ties to
  even) when upsampling (`m > n`), else `floor(i·n/m)`; for integer scales
  that is `floor(i / scale)`, PyTorch's `nearest`. Positions and weights
  are computed in f64 and rounded to the input's type (MLX computes them in
  f32), so `:nearest` can differ from MLX only at exact ties.

      iex> x = Mx.tensor([[[1.0], [3.0]]])
      iex> Mx.NN.Upsample.apply(%{}, x, scale_factor: 2) |> Mx.to_list()
      [[[1.0], [1.0], [3.0], [3.0]]]
      iex> Mx.NN.Upsample.apply(%{}, x, scale_factor: 2, interpolation: :linear) |> Mx.to_list()
      [[[1.0], [1.5], [2.5], [3.0]]]
      iex> Mx.NN.Upsample.apply(%{}, x, scale_factor: 1.5, interpolation: :linear, align_corners: true) |> Mx.to_list()
      [[[1.0], [2.0], [3.0]]]
      iex> Mx.NN.Upsample.apply(%{}, x, scale_factor: 2, interpolation: :cubic) |> Mx.to_list()
      [[[0.7890625], [1.453125], [2.546875], [3.2109375]]]
  """

  @keys [:scale_factor, interpolation: :nearest, align_corners: false]

  @doc "No parameters: `%{}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.Upsample.init")
    check_mode!(opts, "Mx.NN.Upsample.init")
    %{}
  end

  @doc "Upsamples `x` (channels last)."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(_params, x, opts \\ []) do
    where = "Mx.NN.Upsample.apply"
    opts = Mx.NN.layer_opts!(opts, @keys, where)
    check_mode!(opts, where)
    d = tuple_size(x.shape) - 2

    if d < 1 do
      raise ArgumentError,
            "#{where}: the input must be {batch, spatial..., channels} with at least one spatial axis, got #{inspect(x.shape)}"
    end

    scales = scales!(opts[:scale_factor], d, where)

    Enum.zip(1..d, scales)
    |> Enum.reduce(x, fn {axis, scale}, acc ->
      n = elem(acc.shape, axis)
      m = trunc(scale * n)

      if m < 1 do
        raise ArgumentError,
              "#{where}: scale_factor #{scale} leaves no output on spatial axis #{axis - 1} (size #{n})"
      end

      case opts[:interpolation] do
        :nearest -> Mx.take(acc, Mx.tensor(nearest(n, m)), axis: axis)
        _ -> interpolate(acc, axis, n, m, scale, opts[:interpolation], opts[:align_corners])
      end
    end)
  end

  defp nearest(n, m) when m > n,
    do: for(i <- 0..(m - 1), do: round_half_even((i + 0.5) * n / m - 0.5))

  defp nearest(n, m), do: for(i <- 0..(m - 1), do: floor(i * n / m))

  defp round_half_even(v) do
    f = floor(v)

    cond do
      v - f > 0.5 -> f + 1
      v - f < 0.5 -> f
      rem(f, 2) == 0 -> f
      true -> f + 1
    end
  end

  # Interpolation along one axis as a weighted sum of gathered inputs, one term per tap. MLX
  # takes the product of the per-axis weights over every corner, which is the same sum.
  defp interpolate(x, axis, n, m, scale, interpolation, align_corners) do
    wtype = if Mx.Type.float?(Mx.type(x)), do: Mx.type(x), else: :f32

    shape =
      x.shape |> Tuple.to_list() |> Enum.with_index(fn _, j -> if j == axis, do: m, else: 1 end)

    pos = for i <- 0..(m - 1), do: position(i, n, m, scale, align_corners)

    pos
    |> Enum.map(&taps(&1, n, interpolation))
    |> Enum.zip_with(& &1)
    |> Enum.map(fn tap ->
      {idx, w} = Enum.unzip(tap)
      w = w |> Mx.tensor(type: wtype) |> Mx.reshape(List.to_tuple(shape))
      Mx.multiply(Mx.take(x, Mx.tensor(idx), axis: axis), w)
    end)
    |> Enum.reduce(&Mx.add(&2, &1))
  end

  defp position(i, n, m, _scale, true), do: i * (n - 1) / max(m - 1, 1)
  defp position(i, n, m, scale, false), do: i / scale - ((m - 1) / scale - n + 1) / 2

  # Linear: the position clamped to the input, the two neighbours weighted by distance.
  defp taps(p, n, :linear) do
    p = p |> max(0.0) |> min(n - 1.0)
    {lo, hi} = {floor(p), ceil(p)}
    [{lo, 1 - (p - lo)}, {hi, p - lo}]
  end

  # Cubic: Keys' kernel with a = -0.75 (MLX, PyTorch's bicubic) on the four neighbours of the
  # unclamped position; taps outside the input read its border.
  defp taps(p, n, :cubic) do
    f = floor(p)

    for j <- (f - 1)..(f + 2) do
      {j |> max(0) |> min(n - 1), keys_cubic(abs(p - j))}
    end
  end

  defp keys_cubic(t) do
    a = -0.75
    if t <= 1, do: ((a + 2) * t - (a + 3)) * t * t + 1, else: (((t - 5) * t + 8) * t - 4) * a
  end

  defp check_mode!(opts, where) do
    unless opts[:interpolation] in [:nearest, :linear, :cubic] do
      raise ArgumentError,
            "#{where}: interpolation: must be :nearest, :linear or :cubic, got #{inspect(opts[:interpolation])}"
    end

    unless is_boolean(opts[:align_corners]) do
      raise ArgumentError,
            "#{where}: align_corners: must be a boolean, got #{inspect(opts[:align_corners])}"
    end
  end

  defp scales!(s, d, where) do
    list =
      cond do
        is_number(s) -> List.duplicate(s, d)
        is_list(s) -> s
        is_tuple(s) -> Tuple.to_list(s)
        true -> nil
      end

    unless is_list(list) and length(list) == d and Enum.all?(list, &(is_number(&1) and &1 > 0)) do
      raise ArgumentError,
            "#{where}: scale_factor: must be a positive number or a list of #{d} (one per spatial axis), got #{inspect(s)}"
    end

    list
  end
end
