defmodule Mx.NN do
  @moduledoc """
  Neural-network layers as pure functions over parameter trees (MLX's
  `mlx.nn` layer set, Axon's functional style).

  A layer is a module with two functions:

    * `init(key, opts)` returns the layer's parameters: a map of arrays
      (`%{}` for layers without any), named as MLX and PyTorch checkpoints
      name them (`:weight`, `:bias`, ...);
    * `apply(params, input, opts)` runs the layer.

  Both take the same keyword list of hyperparameters (`apply` ignores the
  ones only `init` needs, such as sizes), and `apply` also takes `mode:`
  (`:eval`, the default, or `:train`) and `key:` (a random key, needed by
  dropout in training). So one spec `{module, opts}` describes a layer, and
  `Mx.NN.Sequential` composes specs:

      iex> layers = [{Mx.NN.Linear, input_dims: 3, output_dims: 4}, :relu, {Mx.NN.Linear, input_dims: 4, output_dims: 1}]
      iex> params = Mx.NN.Sequential.init(Mx.Random.key(0), layers: layers)
      iex> Mx.NN.count_params(params)
      21
      iex> Mx.NN.Sequential.apply(params, Mx.ones({5, 3}), layers: layers) |> Mx.shape()
      {5, 1}

  ## State

  Only batch normalization keeps state (its running mean and variance, held
  in its parameter map). In `mode: :train`, `Mx.NN.BatchNorm.apply/3` and
  `Mx.NN.Sequential.apply/3` return `{output, new_params}`, the new
  parameters carrying the updated statistics (outside the gradient); in
  `:eval` they return the output alone. Every other layer returns its output
  in both modes.

  ## Training

  Gradients come from `Mx.value_and_grad/2` over the parameter tree.
  Freezing is by path (see `Mx.Tree`): `freeze_gradients/2` zeroes the
  gradients of frozen parameters, `count_params/2` counts the trainable ones.

  ## Where things are

    * `Mx.NN.Activations` — the 27 activations of `mlx.nn`
    * `Mx.NN.Losses` — the 14 losses of `mlx.nn.losses`
    * `Mx.NN.Init` — the 10 initializers of `mlx.nn.init`
    * layers: `Mx.NN.Linear`, `Mx.NN.Bilinear`, `Mx.NN.Identity`, `Mx.NN.PReLU`,
      `Mx.NN.Sequential`, `Mx.NN.Embedding`, `Mx.NN.BatchNorm`,
      `Mx.NN.LayerNorm`, `Mx.NN.RMSNorm`, `Mx.NN.GroupNorm`,
      `Mx.NN.InstanceNorm`, `Mx.NN.Dropout`, `Mx.NN.Dropout2d`,
      `Mx.NN.Dropout3d`, `Mx.NN.RoPE`, `Mx.NN.SinusoidalPositionalEncoding`,
      `Mx.NN.ALiBi`, `Mx.NN.RNN`, `Mx.NN.GRU`, `Mx.NN.LSTM`,
      `Mx.NN.MultiHeadAttention`, `Mx.NN.TransformerEncoderLayer`,
      `Mx.NN.TransformerDecoderLayer`, `Mx.NN.Conv1d`, `Mx.NN.Conv2d`,
      `Mx.NN.Conv3d`, `Mx.NN.ConvTranspose1d`, `Mx.NN.ConvTranspose2d`,
      `Mx.NN.ConvTranspose3d`, `Mx.NN.MaxPool1d`, `Mx.NN.MaxPool2d`,
      `Mx.NN.MaxPool3d`, `Mx.NN.AvgPool1d`, `Mx.NN.AvgPool2d`,
      `Mx.NN.AvgPool3d`, `Mx.NN.Upsample`

  Layouts are MLX's: features (channels) last, sequences batch-first
  (`{batch, length, features}`).
  """

  alias Mx.Array

  @type params :: map() | list()
  @type frozen :: [Mx.Tree.path()] | (Mx.Tree.path() -> boolean())

  @doc """
  The number of scalar parameters in a tree; with `frozen:` (path prefixes
  or a predicate on paths, see `freeze_gradients/2`) only the trainable
  ones.

      iex> p = %{linear: %{weight: Mx.zeros({3, 2}), bias: Mx.zeros({3})}, norm: %{weight: Mx.ones({3})}}
      iex> Mx.NN.count_params(p)
      12
      iex> Mx.NN.count_params(p, frozen: [[:linear]])
      3
  """
  @spec count_params(params(), keyword()) :: non_neg_integer()
  def count_params(params, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [frozen: []], "Mx.NN.count_params")
    frozen? = frozen_fun!(opts[:frozen], "Mx.NN.count_params")

    params
    |> Mx.Tree.flatten()
    |> Enum.reduce(0, fn {path, a}, n -> if frozen?.(path), do: n, else: n + Mx.size(a) end)
  end

  @doc """
  Zeroes the gradients of frozen parameters, so a gradient step leaves them
  unchanged (MLX's `Module.freeze`). `frozen` is a list of path prefixes (a
  parameter is frozen when its path starts with one of them) or a function
  from a path to a boolean.

      iex> g = %{encoder: %{weight: Mx.ones({2})}, head: %{weight: Mx.ones({2})}}
      iex> out = Mx.NN.freeze_gradients(g, [[:encoder]])
      iex> {Mx.to_list(out.encoder.weight), Mx.to_list(out.head.weight)}
      {[0.0, 0.0], [1.0, 1.0]}
      iex> Mx.NN.freeze_gradients(g, fn path -> List.last(path) == :weight end).head.weight |> Mx.to_list()
      [0.0, 0.0]
  """
  @spec freeze_gradients(params(), frozen()) :: params()
  def freeze_gradients(grads, frozen) do
    frozen? = frozen_fun!(frozen, "Mx.NN.freeze_gradients")

    Mx.Tree.map_with_path(grads, fn path, g ->
      if frozen?.(path), do: Mx.zeros(Mx.shape(g), type: Mx.type(g)), else: g
    end)
  end

  defp frozen_fun!(fun, _where) when is_function(fun, 1), do: fun

  defp frozen_fun!(prefixes, where) when is_list(prefixes) do
    unless Enum.all?(prefixes, &is_list/1) do
      raise ArgumentError,
            "#{where}: frozen paths must be lists such as [:encoder, :weight], got #{inspect(prefixes)}"
    end

    fn path -> Enum.any?(prefixes, &List.starts_with?(path, &1)) end
  end

  defp frozen_fun!(other, where) do
    raise ArgumentError,
          "#{where}: frozen must be a list of path prefixes or a 1-arity function, got #{inspect(other)}"
  end

  @doc """
  Attention `softmax(q kᵀ · scale + mask) v` over the last two axes, as
  MLX's `mx.fast.scaled_dot_product_attention`: `q` is `{..., hq, lq, d}`,
  `k` `{..., hkv, lk, d}` and `v` `{..., hkv, lk, dv}`, all of one float
  type, with leading axes that broadcast (numpy's rules: a lower rank gets
  leading axes of size 1). `hq` may be a multiple of `hkv` (grouped-query
  attention, as Llama's: query head `h` reads key/value head
  `div(h, div(hq, hkv))`, and nothing is repeated in memory); rank 2 inputs
  are one head.

  `scale:` defaults to `1/sqrt(d)`. `mask:` is `nil`, `:causal` (query `i`
  sees keys up to `i + lk - lq`), a boolean array (`true` where attention
  is allowed) or a float array added to the scores; it broadcasts against
  `{..., hq, lq, lk}`. A query allowed no key at all gets NaN (as softmax
  over nothing but `-inf` gives, and as PyTorch's reference formula does);
  with no keys at all (`lk = 0`) the result is 0, the empty sum.

  One fused primitive (c_src/ops_sdpa.c): tiles of queries and keys with a
  streaming softmax on the engine's threads, so the `lq × lk` score matrix
  is never built; f16/bf16 compute in f32. Its gradient covers `q`, `k` and
  `v` (a backward kernel that recomputes the tiles), and `Mx.jvp/3` works;
  a mask has no gradient and second derivatives in `q`, `k`, `v` are not
  implemented (both raise; wrap a mask in `Mx.stop_gradient/1`).

      iex> q = Mx.tensor([[[1.0, 0.0]]])
      iex> kv = Mx.tensor([[[1.0, 0.0], [0.0, 1.0]]])
      iex> Mx.NN.scaled_dot_product_attention(q, kv, kv, mask: Mx.tensor([[true, false]])) |> Mx.to_list()
      [[[1.0, 0.0]]]
      iex> q = Mx.ones({1, 4, 3, 8})
      iex> kv = Mx.ones({1, 2, 5, 8})
      iex> Mx.NN.scaled_dot_product_attention(q, kv, kv, mask: :causal) |> Mx.shape()
      {1, 4, 3, 8}
  """
  @spec scaled_dot_product_attention(Array.t(), Array.t(), Array.t(), keyword()) :: Array.t()
  def scaled_dot_product_attention(q, k, v, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [:mask, :scale], "Mx.NN.scaled_dot_product_attention")
    [q, k, v] = Enum.map([q, k, v], &as_array/1)
    d = if tuple_size(q.shape) > 0, do: elem(q.shape, tuple_size(q.shape) - 1), else: 0
    scale = opts[:scale] || 1.0 / :math.sqrt(d)

    unless is_number(scale) do
      raise ArgumentError,
            "Mx.NN.scaled_dot_product_attention: scale must be a number, got #{inspect(scale)}"
    end

    mask =
      case opts[:mask] do
        nil ->
          nil

        :causal ->
          :causal

        %Array{} = m ->
          m.ref

        other ->
          raise ArgumentError,
                "Mx.NN.scaled_dot_product_attention: mask must be nil, :causal, a boolean array or a float array, got #{inspect(other)}"
      end

    Mx.NIF.scaled_dot_product_attention(q.ref, k.ref, v.ref, mask, scale * 1.0) |> Array.wrap()
  end

  defp as_array(%Array{} = a), do: a
  defp as_array(x), do: Mx.tensor(x)

  @doc false
  # Swaps the last two axes (a batched matrix transpose).
  def swap_last2(%Array{shape: s} = a) do
    r = tuple_size(s)
    Mx.transpose(a, axes: Enum.to_list(0..(r - 3)//1) ++ [r - 1, r - 2])
  end

  @doc false
  # n independent keys from one (a list, for pattern matching at call sites).
  def split_keys(key, n) do
    keys = Mx.Random.split(key, n)
    for i <- 0..(n - 1), do: keys[i]
  end

  @doc false
  # Validates a layer's options: its own keys plus mode:/key:, which every apply takes.
  def layer_opts!(opts, keys, where) do
    opts = Mx.Opts.validate!(opts, keys ++ [mode: :eval, key: nil], where)

    unless opts[:mode] in [:train, :eval] do
      raise ArgumentError, "#{where}: mode must be :train or :eval, got #{inspect(opts[:mode])}"
    end

    opts
  end

  @doc false
  def required!(opts, key, where) do
    case opts[key] do
      n when is_integer(n) and n > 0 ->
        n

      nil ->
        raise ArgumentError, "#{where}: the option #{key}: is required (a positive integer)"

      other ->
        raise ArgumentError, "#{where}: #{key}: must be a positive integer, got #{inspect(other)}"
    end
  end

  @doc false
  # uniform(-scale, scale) of a shape: MLX's default for linear and recurrent weights.
  def uniform_init(key, shape, scale, type),
    do: Mx.Random.uniform(key, -scale, scale, shape: shape, type: type)
end
