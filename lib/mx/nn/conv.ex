defmodule Mx.NN.Conv do
  @moduledoc false
  # The shared body of Conv1d..3d and ConvTranspose1d..3d (MLX layouts: inputs
  # {N, spatial..., C}, weights {out, kernel..., in / groups}) on Mx.conv/3.

  @conv_keys [
    :in_channels,
    :out_channels,
    :kernel_size,
    stride: 1,
    padding: 0,
    dilation: 1,
    groups: 1,
    bias: true,
    type: :f32
  ]

  def keys(:conv), do: @conv_keys
  def keys(:transpose), do: @conv_keys ++ [output_padding: 0]

  @doc false
  # Weights uniform in ±1/√(in_channels · prod(kernel)), bias zeros (MLX).
  def init(key, opts, d, kind, where) do
    opts = Mx.NN.layer_opts!(opts, keys(kind), where)
    i = Mx.NN.required!(opts, :in_channels, where)
    o = Mx.NN.required!(opts, :out_channels, where)

    k =
      per_axis!(
        opts[:kernel_size] ||
          raise(ArgumentError, "#{where}: the option kernel_size: is required"),
        d,
        :kernel_size,
        1,
        where
      )

    g = groups!(opts, i, o, where)
    scale = :math.sqrt(1 / (i * Enum.product(k)))

    w = %{
      weight: Mx.NN.uniform_init(key, List.to_tuple([o | k] ++ [div(i, g)]), scale, opts[:type])
    }

    if opts[:bias], do: Map.put(w, :bias, Mx.zeros({o}, type: opts[:type])), else: w
  end

  @doc false
  def apply(params, x, opts, d, kind, where) do
    opts = Mx.NN.layer_opts!(opts, keys(kind), where)
    w = params.weight
    check_shapes!(x, w, d, where)
    stride = per_axis!(opts[:stride], d, :stride, 1, where)
    pad = per_axis!(opts[:padding], d, :padding, 0, where)
    dil = per_axis!(opts[:dilation], d, :dilation, 1, where)
    g = opts[:groups]
    cin = elem(x.shape, d + 1)

    unless is_integer(g) and g > 0 and rem(cin, g) == 0 and elem(w.shape, d + 1) * g == cin do
      raise ArgumentError,
            "#{where}: the input has #{cin} channels and the weight #{inspect(w.shape)} expects " <>
              "#{elem(w.shape, d + 1)} per group with groups: #{inspect(g)}; they must agree"
    end

    # Channels last -> Mx.conv's {batch, channels, spatial...} and back.
    perm = [0, d + 1 | Enum.to_list(1..d)]

    y =
      case kind do
        :conv ->
          Mx.conv(x, w,
            input_permutation: perm,
            kernel_permutation: perm,
            output_permutation: perm,
            strides: stride,
            padding: Enum.map(pad, &{&1, &1}),
            kernel_dilation: dil,
            feature_group_size: g
          )

        :transpose ->
          out_pad = per_axis!(opts[:output_padding], d, :output_padding, 0, where)
          k = w.shape |> Tuple.to_list() |> Enum.slice(1, d)

          for {op, s, dl} <- Enum.zip([out_pad, stride, dil]), op >= max(s, dl) do
            raise ArgumentError,
                  "#{where}: output_padding (#{op}) must be smaller than the stride (#{s}) or the dilation (#{dl})"
          end

          # A transposed convolution is the convolution of the stride-dilated input with the
          # spatially flipped kernel, padded by dilation·(k - 1) - padding on each side.
          flipped = Mx.reverse(w, axes: Enum.to_list(1..d))

          padding =
            Enum.zip_with([k, pad, dil, out_pad], fn [k, p, dl, op] ->
              {dl * (k - 1) - p, dl * (k - 1) - p + op}
            end)

          Mx.conv(x, flipped,
            input_permutation: perm,
            kernel_permutation: perm,
            output_permutation: perm,
            input_dilation: stride,
            padding: padding,
            kernel_dilation: dil,
            feature_group_size: g
          )
      end

    if b = params[:bias], do: Mx.add(y, b), else: y
  end

  defp check_shapes!(x, w, d, where) do
    unless tuple_size(x.shape) == d + 2 and tuple_size(w.shape) == d + 2 do
      raise ArgumentError,
            "#{where}: the input must be {batch, #{d} spatial axes, channels} and the weight " <>
              "{out, #{d} kernel axes, in / groups}; got #{inspect(x.shape)} and #{inspect(w.shape)}"
    end
  end

  defp groups!(opts, i, o, where) do
    g = opts[:groups]

    unless is_integer(g) and g > 0 and rem(i, g) == 0 and rem(o, g) == 0 do
      raise ArgumentError,
            "#{where}: groups: must be a positive integer dividing in_channels (#{i}) and out_channels (#{o}), got #{inspect(g)}"
    end

    g
  end

  @doc false
  # An integer (every spatial axis) or a list/tuple of d integers, each >= min.
  def per_axis!(n, d, key, min, where) do
    list =
      cond do
        is_integer(n) -> List.duplicate(n, d)
        is_tuple(n) -> Tuple.to_list(n)
        is_list(n) -> n
        true -> nil
      end

    unless is_list(list) and length(list) == d and
             Enum.all?(list, &(is_integer(&1) and &1 >= min)) do
      raise ArgumentError,
            "#{where}: #{key}: must be an integer >= #{min} or a list of #{d} such integers, got #{inspect(n)}"
    end

    list
  end
end

for {d, name, ex_x, ex_w, ex_out} <- [
      {1, "Conv1d", "Mx.tensor([[[1.0], [2.0], [3.0], [4.0]]])", "Mx.tensor([[[1.0], [-1.0]]])",
       "[[[-1.0], [-1.0], [-1.0]]]"},
      {2, "Conv2d", "Mx.reshape(Mx.iota({9}, type: :f32), {1, 3, 3, 1})", "Mx.ones({1, 2, 2, 1})",
       "[[[[8.0], [12.0]], [[20.0], [24.0]]]]"},
      {3, "Conv3d", "Mx.ones({1, 2, 2, 2, 1})", "Mx.ones({1, 2, 2, 2, 1})", "[[[[[8.0]]]]]"}
    ] do
  defmodule Module.concat(Mx.NN, name) do
    @moduledoc """
    A #{d}-d convolution (MLX's `nn.#{name}`), channels last: input
    `{batch, #{Enum.map_join(1..d, ", ", &"s#{&1}")}, in_channels}`, weight
    `{out_channels, #{Enum.map_join(1..d, ", ", &"k#{&1}")}, in_channels / groups}`,
    bias `{out_channels}`. It computes a cross-correlation, as MLX and PyTorch do.

    Options: `in_channels:`, `out_channels:`, `kernel_size:` (required by
    `init/2`), `stride:` (default 1), `padding:` (zeros on both sides, default
    0), `dilation:` (default 1), `groups:` (default 1), `bias:` (default
    true), `type:` (default `:f32`). Per-axis options are an integer for every
    axis or a list of #{d}. `init/2` draws the weight uniform in
    `±1/√(in_channels · prod(kernel_size))` and sets the bias to zeros (MLX).

        iex> p = %{weight: #{ex_w}}
        iex> Mx.NN.#{name}.apply(p, #{ex_x}) |> Mx.to_list()
        #{ex_out}
    """
    @d d
    @where "Mx.NN.#{name}"

    @doc "The parameters (see the module doc)."
    @spec init(Mx.Random.key(), keyword()) :: map()
    def init(key, opts), do: Mx.NN.Conv.init(key, opts, @d, :conv, @where <> ".init")

    @doc "Applies the convolution to `x` (channels last)."
    @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
    def apply(params, x, opts \\ []),
      do: Mx.NN.Conv.apply(params, x, opts, @d, :conv, @where <> ".apply")
  end
end

for {d, name, ex_x, ex_w, ex_out} <- [
      {1, "ConvTranspose1d", "Mx.tensor([[[1.0], [2.0]]])", "Mx.tensor([[[1.0], [10.0]]])",
       "[[[1.0], [10.0], [2.0], [20.0]]]"},
      {2, "ConvTranspose2d", "Mx.ones({1, 1, 1, 1})",
       "Mx.reshape(Mx.tensor([1.0, 2.0, 3.0, 4.0]), {1, 2, 2, 1})",
       "[[[[1.0], [2.0]], [[3.0], [4.0]]]]"},
      {3, "ConvTranspose3d", "Mx.ones({1, 1, 1, 1, 1})", "Mx.ones({1, 1, 1, 2, 1})",
       "[[[[[1.0], [1.0]]]]]"}
    ] do
  defmodule Module.concat(Mx.NN, name) do
    @moduledoc """
    A #{d}-d transposed convolution (MLX's `nn.#{name}`, the gradient of a
    convolution with respect to its input), channels last: input
    `{batch, #{Enum.map_join(1..d, ", ", &"s#{&1}")}, in_channels}`, weight
    `{out_channels, #{Enum.map_join(1..d, ", ", &"k#{&1}")}, in_channels / groups}`,
    bias `{out_channels}`. Each output size is
    `(s - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1`.

    Options: `in_channels:`, `out_channels:`, `kernel_size:` (required by
    `init/2`), `stride:` (default 1), `padding:` (default 0), `dilation:`
    (default 1), `output_padding:` (extra rows at the high end, smaller than
    the stride or the dilation; default 0), `groups:` (default 1), `bias:`
    (default true), `type:` (default `:f32`). Per-axis options are an integer
    for every axis or a list of #{d}. `init/2` draws the weight uniform in
    `±1/√(in_channels · prod(kernel_size))` and sets the bias to zeros (MLX).

        iex> p = %{weight: #{ex_w}}
        iex> Mx.NN.#{name}.apply(p, #{ex_x}, stride: 2) |> Mx.to_list()
        #{ex_out}
    """
    @d d
    @where "Mx.NN.#{name}"

    @doc "The parameters (see the module doc)."
    @spec init(Mx.Random.key(), keyword()) :: map()
    def init(key, opts), do: Mx.NN.Conv.init(key, opts, @d, :transpose, @where <> ".init")

    @doc "Applies the transposed convolution to `x` (channels last)."
    @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
    def apply(params, x, opts \\ []),
      do: Mx.NN.Conv.apply(params, x, opts, @d, :transpose, @where <> ".apply")
  end
end
