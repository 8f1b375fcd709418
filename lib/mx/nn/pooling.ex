defmodule Mx.NN.Pool do
  @moduledoc false
  # The shared body of MaxPool1d..3d and AvgPool1d..3d on Mx.window_max/window_sum, channels last.

  @keys [:kernel_size, stride: nil, padding: 0]

  def init(opts, where) do
    Mx.NN.layer_opts!(opts, @keys, where)
    %{}
  end

  def apply(x, opts, d, kind, where) do
    opts = Mx.NN.layer_opts!(opts, @keys, where)

    k =
      Mx.NN.Conv.per_axis!(
        opts[:kernel_size] ||
          raise(ArgumentError, "#{where}: the option kernel_size: is required"),
        d,
        :kernel_size,
        1,
        where
      )

    # The stride defaults to the kernel size (MLX and PyTorch).
    s = Mx.NN.Conv.per_axis!(opts[:stride] || k, d, :stride, 1, where)
    p = Mx.NN.Conv.per_axis!(opts[:padding], d, :padding, 0, where)

    for {pi, ki} <- Enum.zip(p, k), 2 * pi > ki do
      raise ArgumentError,
            "#{where}: padding (#{pi}) must be at most half the kernel size (#{ki}), or a window could hold only padding"
    end

    unless tuple_size(x.shape) == d + 2 do
      raise ArgumentError,
            "#{where}: the input must be {batch, #{d} spatial axes, channels}, got #{inspect(x.shape)}"
    end

    window = List.to_tuple([1 | k] ++ [1])
    wopts = [strides: [1 | s] ++ [1], padding: [{0, 0} | Enum.map(p, &{&1, &1})] ++ [{0, 0}]]

    # Padding holds the reduction's identity: -inf for max; zeros counted in the mean (MLX, PyTorch's default).
    case kind do
      :max -> Mx.window_max(x, window, wopts)
      :avg -> x |> Mx.window_sum(window, wopts) |> Mx.divide(Enum.product(k))
    end
  end
end

for {kind, what, example} <- [
      {:max, "The maximum", "[[[5.0], [4.0]]]"},
      {:avg, "The mean", "[[[3.0], [2.5]]]"}
    ],
    d <- 1..3 do
  name = "#{kind |> to_string() |> String.capitalize()}Pool#{d}d"

  defmodule Module.concat(Mx.NN, name) do
    @moduledoc """
    #{what} over `kernel_size` windows of each spatial axis (MLX's
    `nn.#{name}`), channels last: input `{batch, #{Enum.map_join(1..d, ", ", &"s#{&1}")}, channels}`.
    Options: `kernel_size:` (required), `stride:` (default `kernel_size`),
    `padding:` (default 0, at most half the kernel size#{if kind == :max, do: "; padding never wins the maximum", else: "; padded zeros count in the mean, as MLX and PyTorch's default"}).
    Per-axis options are an integer for every axis or a list of #{d}. No
    parameters. Each output size is `floor((s + 2·padding - kernel_size) / stride) + 1`.

    #{if d == 1,
      do: """
          iex> Mx.NN.#{name}.apply(%{}, Mx.tensor([[[1.0], [5.0], [4.0], [1.0]]]), kernel_size: 2) |> Mx.to_list()
          #{example}
      """,
      else: """
          iex> Mx.NN.#{name}.apply(%{}, Mx.ones({1#{String.duplicate(", 4", d)}, 3}), kernel_size: 2, stride: 1) |> Mx.shape()
          {1#{String.duplicate(", 3", d)}, 3}
      """}
    """
    @d d
    @kind kind
    @where "Mx.NN.#{name}"

    @doc "No parameters: `%{}`."
    @spec init(Mx.Random.key(), keyword()) :: map()
    def init(_key, opts), do: Mx.NN.Pool.init(opts, @where <> ".init")

    @doc "Pools `x` (channels last)."
    @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
    def apply(_params, x, opts \\ []),
      do: Mx.NN.Pool.apply(x, opts, @d, @kind, @where <> ".apply")
  end
end
