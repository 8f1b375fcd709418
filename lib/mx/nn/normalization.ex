defmodule Mx.NN.LayerNorm do
  @moduledoc """
  Layer normalization over the last axis: `(x - mean) / √(var + eps) · weight
  + bias` (biased variance). Options: `dims:` (required by `init/2`),
  `eps:` (default 1e-5), `affine:` (default true: learned `weight` and
  `bias`), `bias:` (default true), `type:`.

      iex> y = Mx.NN.LayerNorm.apply(%{}, Mx.tensor([[1.0, 3.0]]), affine: false)
      iex> Mx.to_list(y) |> hd() |> Enum.map(&Float.round(&1, 4))
      [-1.0, 1.0]
  """

  @keys [:dims, eps: 1.0e-5, affine: true, bias: true, type: :f32]

  @doc "`%{weight: ones, bias: zeros}` of shape `{dims}` (empty without `affine:`)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.LayerNorm.init")
    d = Mx.NN.required!(opts, :dims, "Mx.NN.LayerNorm.init")
    Mx.NN.Norm.affine_params(d, opts[:affine], opts[:affine] and opts[:bias], opts[:type])
  end

  @doc "Normalizes `x` of shape `{..., dims}`."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.LayerNorm.apply")
    x |> Mx.NN.Norm.standardize([-1], opts[:eps]) |> Mx.NN.Norm.scale_shift(params)
  end
end

defmodule Mx.NN.RMSNorm do
  @moduledoc """
  Root-mean-square normalization over the last axis: `x / √(mean(x²) +
  eps) · weight`. Options: `dims:` (required by `init/2`), `eps:` (default
  1e-5), `type:`. Parameters `%{weight: ones({dims})}`.

      iex> y = Mx.NN.RMSNorm.apply(%{weight: Mx.tensor([1.0, 2.0])}, Mx.tensor([3.0, 4.0]), eps: 0.0)
      iex> Mx.to_list(y) |> Enum.map(&Float.round(&1, 5))
      [0.84853, 2.26274]
  """

  @keys [:dims, eps: 1.0e-5, type: :f32]

  @doc "`%{weight: ones({dims})}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.RMSNorm.init")
    %{weight: Mx.ones({Mx.NN.required!(opts, :dims, "Mx.NN.RMSNorm.init")}, type: opts[:type])}
  end

  @doc "Normalizes `x` of shape `{..., dims}`."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.RMSNorm.apply")
    ms = x |> Mx.square() |> Mx.mean(axes: [-1], keep_axes: true)
    x |> Mx.multiply(Mx.rsqrt(Mx.add(ms, opts[:eps]))) |> Mx.multiply(params.weight)
  end
end

defmodule Mx.NN.GroupNorm do
  @moduledoc """
  Group normalization, channels last (`{batch, ..., dims}`): the channels
  split into `num_groups:` groups of consecutive channels (PyTorch's
  grouping, MLX's `pytorch_compatible=True`), each normalized over its
  channels and all spatial positions of one example. Options: `num_groups:`,
  `dims:` (required), `eps:` (default 1e-5), `affine:` (default true), `type:`.
  """

  @keys [:num_groups, :dims, eps: 1.0e-5, affine: true, type: :f32]

  @doc "`%{weight: ones, bias: zeros}` of shape `{dims}` (empty without `affine:`)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.GroupNorm.init")
    g = Mx.NN.required!(opts, :num_groups, "Mx.NN.GroupNorm.init")
    d = Mx.NN.required!(opts, :dims, "Mx.NN.GroupNorm.init")

    if rem(d, g) != 0,
      do:
        raise(
          ArgumentError,
          "Mx.NN.GroupNorm.init: dims (#{d}) must be a multiple of num_groups (#{g})"
        )

    Mx.NN.Norm.affine_params(d, opts[:affine], opts[:affine], opts[:type])
  end

  @doc "Normalizes `x` of shape `{batch, ..., dims}`."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.GroupNorm.apply")
    g = Mx.NN.required!(opts, :num_groups, "Mx.NN.GroupNorm.apply")
    shape = x.shape
    r = tuple_size(shape)
    {b, c} = {elem(shape, 0), elem(shape, r - 1)}

    if rem(c, g) != 0,
      do:
        raise(
          ArgumentError,
          "Mx.NN.GroupNorm.apply: #{c} channels are not a multiple of num_groups (#{g})"
        )

    x
    |> Mx.reshape({b, :auto, g, div(c, g)})
    |> Mx.NN.Norm.standardize([1, 3], opts[:eps])
    |> Mx.reshape(shape)
    |> Mx.NN.Norm.scale_shift(params)
  end
end

defmodule Mx.NN.InstanceNorm do
  @moduledoc """
  Instance normalization, channels last (`{batch, ..., dims}`): each
  channel of each example normalized over its spatial positions. Options:
  `dims:` (required), `eps:` (default 1e-5), `affine:` (default false), `type:`.
  """

  @keys [:dims, eps: 1.0e-5, affine: false, type: :f32]

  @doc "`%{weight: ones, bias: zeros}` with `affine: true`, else `%{}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.InstanceNorm.init")

    Mx.NN.Norm.affine_params(
      Mx.NN.required!(opts, :dims, "Mx.NN.InstanceNorm.init"),
      opts[:affine],
      opts[:affine],
      opts[:type]
    )
  end

  @doc "Normalizes `x` of shape `{batch, ..., dims}` (rank ≥ 3)."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.InstanceNorm.apply")
    r = Mx.rank(x)

    if r < 3,
      do:
        raise(
          ArgumentError,
          "Mx.NN.InstanceNorm.apply: input must be {batch, ..., channels} of rank >= 3, got #{Mx.describe(x)}"
        )

    x
    |> Mx.NN.Norm.standardize(Enum.to_list(1..(r - 2)), opts[:eps])
    |> Mx.NN.Norm.scale_shift(params)
  end
end

defmodule Mx.NN.BatchNorm do
  @moduledoc """
  Batch normalization, channels last (`{batch, ..., num_features}`).
  Options: `num_features:` (required by `init/2`), `eps:` (default 1e-5),
  `momentum:` (default 0.1), `affine:` (default true), `type:`.

  Parameters `%{weight:, bias:, running_mean:, running_var:}`; the running
  statistics are state, not trained (leave them out of gradient steps with
  `Mx.NN.freeze_gradients/2`, path suffix `:running_mean`/`:running_var`).
  In `mode: :train` the batch's mean and biased variance normalize, and
  `apply/3` returns `{output, new_params}` with
  `running = (1 - momentum) · running + momentum · batch`, the variance
  unbiased (PyTorch; MLX uses the biased one); in `:eval` the running
  statistics normalize and the output alone comes back.

      iex> p = Mx.NN.BatchNorm.init(Mx.Random.key(0), num_features: 1, affine: false)
      iex> {y, p2} = Mx.NN.BatchNorm.apply(p, Mx.tensor([[1.0], [3.0]]), mode: :train, affine: false)
      iex> {Mx.to_list(y), Mx.to_list(p2.running_mean), Mx.to_list(p2.running_var)}
      {[[-0.9999949932098389], [0.9999949932098389]], [0.20000000298023224], [1.100000023841858]}
  """

  @keys [:num_features, eps: 1.0e-5, momentum: 0.1, affine: true, type: :f32]

  @doc "Affine parameters (ones, zeros) and running statistics (zeros, ones), each `{num_features}`."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(_key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.BatchNorm.init")
    n = Mx.NN.required!(opts, :num_features, "Mx.NN.BatchNorm.init")

    Mx.NN.Norm.affine_params(n, opts[:affine], opts[:affine], opts[:type])
    |> Map.merge(%{
      running_mean: Mx.zeros({n}, type: opts[:type]),
      running_var: Mx.ones({n}, type: opts[:type])
    })
  end

  @doc "Normalizes `x`; see the module doc for the two modes."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t() | {Mx.Array.t(), map()}
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.BatchNorm.apply")
    axes = Enum.to_list(0..(Mx.rank(x) - 2)//1)

    if opts[:mode] == :train do
      mean = Mx.mean(x, axes: axes)
      var = x |> Mx.subtract(mean) |> Mx.square() |> Mx.mean(axes: axes)

      y =
        x
        |> Mx.subtract(mean)
        |> Mx.multiply(Mx.rsqrt(Mx.add(var, opts[:eps])))
        |> Mx.NN.Norm.scale_shift(params)

      n = div(Mx.size(x), elem(x.shape, Mx.rank(x) - 1))
      m = opts[:momentum]
      unbiased = Mx.multiply(var, n / max(n - 1, 1))

      update = fn running, batch ->
        Mx.stop_gradient(Mx.add(Mx.multiply(running, 1 - m), Mx.multiply(batch, m)))
      end

      {y,
       %{
         params
         | running_mean: update.(params.running_mean, mean),
           running_var: update.(params.running_var, unbiased)
       }}
    else
      x
      |> Mx.subtract(params.running_mean)
      |> Mx.multiply(Mx.rsqrt(Mx.add(params.running_var, opts[:eps])))
      |> Mx.NN.Norm.scale_shift(params)
    end
  end

  @doc false
  def stateful?, do: true
end

defmodule Mx.NN.Norm do
  @moduledoc false
  # Shared by the normalization layers.

  def standardize(x, axes, eps) do
    mean = Mx.mean(x, axes: axes, keep_axes: true)
    centered = Mx.subtract(x, mean)
    var = centered |> Mx.square() |> Mx.mean(axes: axes, keep_axes: true)
    Mx.multiply(centered, Mx.rsqrt(Mx.add(var, eps)))
  end

  def scale_shift(y, params) do
    y = if w = params[:weight], do: Mx.multiply(y, w), else: y
    if b = params[:bias], do: Mx.add(y, b), else: y
  end

  def affine_params(_d, false, _bias?, _type), do: %{}

  def affine_params(d, true, bias?, type) do
    w = %{weight: Mx.ones({d}, type: type)}
    if bias?, do: Map.put(w, :bias, Mx.zeros({d}, type: type)), else: w
  end
end
