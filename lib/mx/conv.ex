defmodule Mx.Conv do
  @moduledoc """
  Convolution and window reductions with Nx's semantics (`Nx.conv/3`,
  `Nx.window_sum/3` and friends, `Nx.window_scatter_max/5`), on the engine's
  `conv`, `window_*` and `window_scatter_*` primitives (c_src/ops_conv.c,
  c_src/prim/conv.c). `Mx` delegates to these functions.

  Convolution runs as im2col and a BLAS gemm on engine threads (f32, f64,
  c64, c128; integers compute in f32, f16/bf16 in f32 and round back).
  Padding and input dilation become a pad node, batch groups become feature
  groups, and permutations are transposes around the primitive, so every
  option is differentiable (`Mx.grad/1`) and batches under `Mx.vmap/3`.
  """

  alias Mx.{Array, NIF}

  @typedoc "Per-axis integers: one integer for every axis, or a list with one per axis."
  @type per_axis :: pos_integer() | [pos_integer()]
  @typedoc "`:valid` (none), `:same` (Nx's: the dilated window's size - 1, split low-first) or `{low, high}` per axis."
  @type padding :: :valid | :same | [{integer(), integer()}]

  @conv_opts [
    strides: 1,
    padding: :valid,
    input_dilation: 1,
    kernel_dilation: 1,
    feature_group_size: 1,
    batch_group_size: 1,
    input_permutation: nil,
    kernel_permutation: nil,
    output_permutation: nil
  ]

  @doc """
  An N-d convolution as `Nx.conv/3` computes it (a cross-correlation, as in
  neural networks): `input` is `{batch, channels, spatial...}` and `kernel`
  `{out_channels, channels / feature_group_size, kernel_spatial...}`; the
  result is `{batch / batch_group_size, out_channels, out_spatial...}`.
  `Mx.conv/3` delegates here.

  Options (each per-axis value is an integer for every spatial axis or a list
  with one per spatial axis):

    * `:strides` - window steps (default 1)
    * `:padding` - `:valid` (default), `:same` or `[{low, high}, ...]` per spatial
      axis, zeros; negative values crop
    * `:input_dilation` - `d - 1` zeros between input elements (default 1)
    * `:kernel_dilation` - `d - 1` gaps between kernel taps (default 1)
    * `:feature_group_size` - splits channels into groups, each with its share of
      the kernel's output channels (default 1)
    * `:batch_group_size` - splits the batch (group-major) into groups, each with
      its share of the output channels (default 1); at most one of the group sizes is > 1
    * `:input_permutation`, `:kernel_permutation`, `:output_permutation` - where the
      batch (output channel), channel and spatial axes are, as in Nx

  ## Examples

      iex> x = Mx.tensor([[[1.0, 2.0, 3.0, 4.0]]])
      iex> Mx.conv(x, Mx.tensor([[[1.0, -1.0]]])) |> Mx.to_list()
      [[[-1.0, -1.0, -1.0]]]
      iex> Mx.conv(x, Mx.tensor([[[2.0, 1.0]]]), padding: [{1, 0}], strides: 2) |> Mx.to_list()
      [[[1.0, 7.0]]]

      iex> Mx.conv(Mx.iota({1, 4, 2}), Mx.ones({2, 2, 1}), feature_group_size: 2) |> Mx.to_list()
      [[[2.0, 4.0], [10.0, 12.0]]]

      iex> Mx.conv(Mx.ones({1, 2, 3}), Mx.ones({1, 2, 1}), strides: 0)
      ** (Mx.Error) [conv] strides must be positive integers (one per spatial axis), got 0 on axis 0
  """
  @spec conv(Mx.tensor_like(), Mx.tensor_like(), keyword()) :: Mx.t()
  def conv(input, kernel, opts \\ []) do
    opts = Mx.Opts.validate!(opts, @conv_opts, "Mx.conv")
    x = to_array(input)
    w = to_array(kernel)
    r = tuple_size(x.shape)

    if r < 3 or tuple_size(w.shape) != r do
      raise ArgumentError,
            "Mx.conv: input #{inspect(x.shape)} and kernel #{inspect(w.shape)} need the same rank, at least 3 " <>
              "({batch, channels, spatial...})"
    end

    x = permute(x, opts[:input_permutation], :input_permutation)
    w = permute(w, opts[:kernel_permutation], :kernel_permutation)
    s = r - 2
    strides = per_axis(opts[:strides], s, :strides, "Mx.conv")
    input_dilation = per_axis(opts[:input_dilation], s, :input_dilation, "Mx.conv")
    kernel_dilation = per_axis(opts[:kernel_dilation], s, :kernel_dilation, "Mx.conv")
    spatial = x.shape |> Tuple.to_list() |> Enum.drop(2)

    spatial =
      Enum.zip_with(spatial, input_dilation, fn n, d -> if n > 0, do: (n - 1) * d + 1, else: 0 end)

    taps = w.shape |> Tuple.to_list() |> Enum.drop(2) |> dilated(kernel_dilation)
    {lo, hi} = padding(opts[:padding], spatial, taps, "Mx.conv")
    fg = group(opts[:feature_group_size], :feature_group_size)
    bg = group(opts[:batch_group_size], :batch_group_size)

    out =
      NIF.conv(x.ref, w.ref, strides, lo, hi, input_dilation, kernel_dilation, fg, bg)
      |> Array.wrap()

    case opts[:output_permutation] do
      nil -> out
      perm -> Mx.transpose(out, axes: inverse(check_perm(perm, r, :output_permutation)))
    end
  end

  @window_opts [strides: 1, padding: :valid, window_dilations: 1]

  for {op, what} <- [
        window_sum: "Sums",
        window_product: "Multiplies",
        window_max: "The maximum of",
        window_min: "The minimum of"
      ] do
    @doc """
    #{what} each window of `t` (`Nx.#{op}/3`): `window_dimensions` is a
    tuple with one size per axis. Options: `:strides` (default 1),
    `:padding` (`:valid`, `:same` or `{low, high}` per axis, filled with the
    reduction's identity) and `:window_dilations` (default 1). Integer sums and
    products wrap in the input's type, as Nx's do. `Mx.#{op}/3` delegates here.

        iex> Mx.#{op}(Mx.tensor([[1, 5, 2], [4, 3, 6]]), {2, 2}) |> Mx.to_list()
        #{inspect(%{window_sum: [[13, 16]], window_product: [[60, 180]], window_max: [[5, 6]], window_min: [[1, 2]]}[op])}
    """
    @spec unquote(op)(Mx.tensor_like(), tuple(), keyword()) :: Mx.t()
    def unquote(op)(t, window_dimensions, opts \\ []) do
      window(unquote(op), t, window_dimensions, opts, unquote("Mx.#{op}"))
    end
  end

  defp window(op, t, window_dimensions, opts, where) do
    opts = Mx.Opts.validate!(opts, @window_opts, where)
    x = to_array(t)
    r = tuple_size(x.shape)
    win = window_list(window_dimensions, r, where)
    strides = per_axis(opts[:strides], r, :strides, where)
    dil = per_axis(opts[:window_dilations], r, :window_dilations, where)
    {lo, hi} = padding(opts[:padding], Tuple.to_list(x.shape), dilated(win, dil), where)
    NIF.window(op, x.ref, win, strides, lo, hi, dil) |> Array.wrap()
  end

  @scatter_opts [strides: 1, padding: :valid]

  for {op, what} <- [window_scatter_max: "maximum", window_scatter_min: "minimum"] do
    @doc """
    `Nx.#{op}/5`: a tensor of `t`'s shape holding `init_value` plus, for each
    window of `t`, that window's value of `source` (`source` has the windows'
    shape) added at the window's #{what}; among equal #{what}s the last in the
    window wins, as in Nx. Options: `:strides` (default 1) and `:padding`
    (`:valid`, `:same` or `{low, high}` per axis; padding is never selected).
    It is the gradient of `window_#{String.replace(to_string(op), "window_scatter_", "")}/3`.
    `Mx.#{op}/5` delegates here.

        iex> Mx.#{op}(Mx.tensor([1, 5, 2, 7]), Mx.tensor([10, 20]), 0, {2}, strides: 2) |> Mx.to_list()
        #{inspect(%{window_scatter_max: [0, 10, 0, 20], window_scatter_min: [10, 0, 20, 0]}[op])}
    """
    @spec unquote(op)(Mx.tensor_like(), Mx.tensor_like(), Mx.tensor_like(), tuple(), keyword()) ::
            Mx.t()
    def unquote(op)(t, source, init_value, window_dimensions, opts \\ []) do
      where = unquote("Mx.#{op}")
      opts = Mx.Opts.validate!(opts, @scatter_opts, where)
      x = to_array(t)
      r = tuple_size(x.shape)
      win = window_list(window_dimensions, r, where)
      strides = per_axis(opts[:strides], r, :strides, where)
      {lo, hi} = padding(opts[:padding], Tuple.to_list(x.shape), win, where)
      src = to_array(source)
      init = to_array(init_value)

      NIF.window_scatter(unquote(op), x.ref, src.ref, init.ref, win, strides, lo, hi)
      |> Array.wrap()
    end
  end

  # ---- options ----------------------------------------------------------------------------

  defp to_array(%Array{} = a), do: a
  defp to_array(x), do: Mx.tensor(x)

  defp per_axis(n, count, _key, _where) when is_integer(n), do: List.duplicate(n, count)

  defp per_axis(list, count, key, where) when is_list(list) do
    if length(list) != count or not Enum.all?(list, &is_integer/1) do
      raise ArgumentError,
            "#{where}: #{key} must be an integer or a list of #{count} integers, got #{inspect(list)}"
    end

    list
  end

  defp per_axis(other, count, key, where),
    do:
      raise(
        ArgumentError,
        "#{where}: #{key} must be an integer or a list of #{count} integers, got #{inspect(other)}"
      )

  defp window_list(window, r, where) when is_tuple(window) and tuple_size(window) == r do
    list = Tuple.to_list(window)
    if Enum.all?(list, &is_integer/1), do: list, else: window_error(window, r, where)
  end

  defp window_list(window, r, where), do: window_error(window, r, where)

  defp window_error(window, r, where),
    do:
      raise(
        ArgumentError,
        "#{where}: window dimensions must be a tuple of #{r} integers (one per axis), got #{inspect(window)}"
      )

  defp dilated(sizes, dilations),
    do: Enum.zip_with(sizes, dilations, fn k, d -> if k > 0, do: (k - 1) * d + 1, else: 0 end)

  defp padding(:valid, sizes, _window, _where), do: {zeros(sizes), zeros(sizes)}

  defp padding(:same, _sizes, window, _where) do
    window
    |> Enum.map(fn k ->
      t = Kernel.max(k - 1, 0)
      {div(t, 2), t - div(t, 2)}
    end)
    |> Enum.unzip()
  end

  defp padding(config, sizes, _window, where) when is_list(config) do
    if length(config) != length(sizes) or
         not Enum.all?(config, &match?({lo, hi} when is_integer(lo) and is_integer(hi), &1)) do
      padding_error(config, length(sizes), where)
    end

    Enum.unzip(config)
  end

  defp padding(other, sizes, _window, where), do: padding_error(other, length(sizes), where)

  defp padding_error(config, n, where) do
    raise ArgumentError,
          "#{where}: padding must be :valid, :same or a list of #{n} {low, high} integer pairs, got #{inspect(config)}"
  end

  defp zeros(sizes), do: Enum.map(sizes, fn _ -> 0 end)

  defp group(n, _key) when is_integer(n), do: n

  defp group(other, key),
    do: raise(ArgumentError, "Mx.conv: #{key} must be a positive integer, got #{inspect(other)}")

  defp permute(a, nil, _key), do: a

  defp permute(a, perm, key),
    do: Mx.transpose(a, axes: check_perm(perm, tuple_size(a.shape), key))

  defp check_perm(perm, r, key) do
    if is_list(perm) and Enum.sort(perm) == Enum.to_list(0..(r - 1)),
      do: perm,
      else:
        raise(
          ArgumentError,
          "Mx.conv: #{key} must list each of the #{r} axes once, got #{inspect(perm)}"
        )
  end

  defp inverse(perm), do: perm |> Enum.with_index() |> Enum.sort() |> Enum.map(&elem(&1, 1))
end
