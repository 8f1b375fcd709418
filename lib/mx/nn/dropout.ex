defmodule Mx.NN.Dropout do
  @moduledoc """
  In `mode: :train`, zeroes each element with probability `rate:` (default
  0.5) and scales the rest by `1 / (1 - rate)`, drawing from `key:`
  (required in training); in `:eval`, the identity. No parameters.

      iex> x = Mx.ones({1000})
      iex> Mx.NN.Dropout.apply(%{}, x) |> Mx.sum() |> Mx.to_number()
      1000.0
      iex> y = Mx.NN.Dropout.apply(%{}, x, mode: :train, key: Mx.Random.key(0), rate: 0.5)
      iex> y |> Mx.to_flat_list() |> Enum.uniq() |> Enum.sort()
      [0.0, 2.0]
  """

  @keys [rate: 0.5]

  @doc "No parameters: `%{}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    Mx.NN.layer_opts!(opts, @keys, "Mx.NN.Dropout.init")
    %{}
  end

  @doc "See the module doc."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(_params, x, opts \\ []), do: drop(x, opts, 0, "Mx.NN.Dropout.apply")

  @doc false
  # Shared by Dropout2d/3d: the mask has size 1 on the `spatial` axes before the channel axis.
  def drop(x, opts, spatial, where) do
    opts = Mx.NN.layer_opts!(opts, @keys, where)
    rate = opts[:rate]

    unless is_number(rate) and rate >= 0 and rate < 1 do
      raise ArgumentError, "#{where}: rate must be in [0, 1), got #{inspect(rate)}"
    end

    cond do
      opts[:mode] == :eval or rate == 0 ->
        x

      opts[:key] == nil ->
        raise ArgumentError, "#{where}: mode: :train needs key: (a random key) to draw the mask"

      true ->
        r = Mx.rank(x)

        if spatial > 0 and r < spatial + 1 do
          raise ArgumentError,
                "#{where}: input must be {..., #{spatial} spatial axes, channels}, got #{Mx.describe(x)}"
        end

        shape = Enum.reduce((r - spatial - 1)..(r - 2)//1, x.shape, &put_elem(&2, &1, 1))
        keep = Mx.Random.bernoulli(opts[:key], 1 - rate, shape: shape)
        Mx.select(keep, Mx.multiply(x, 1 / (1 - rate)), 0.0)
    end
  end
end

defmodule Mx.NN.Dropout2d do
  @moduledoc """
  Channel dropout for `{batch, height, width, channels}` (or unbatched
  `{height, width, channels}`) input: in training, whole channels of an
  example are zeroed with probability `rate:` and the rest scaled by
  `1 / (1 - rate)`, as `Mx.NN.Dropout`.
  """

  @doc "No parameters: `%{}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    Mx.NN.layer_opts!(opts, [rate: 0.5], "Mx.NN.Dropout2d.init")
    %{}
  end

  @doc "See the module doc."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(_params, x, opts \\ []), do: Mx.NN.Dropout.drop(x, opts, 2, "Mx.NN.Dropout2d.apply")
end

defmodule Mx.NN.Dropout3d do
  @moduledoc """
  Channel dropout for `{batch, depth, height, width, channels}` (or
  unbatched) input, as `Mx.NN.Dropout2d` with three spatial axes.
  """

  @doc "No parameters: `%{}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    Mx.NN.layer_opts!(opts, [rate: 0.5], "Mx.NN.Dropout3d.init")
    %{}
  end

  @doc "See the module doc."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(_params, x, opts \\ []), do: Mx.NN.Dropout.drop(x, opts, 3, "Mx.NN.Dropout3d.apply")
end
