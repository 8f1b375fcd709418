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
      `Mx.NN.AvgPool3d`, `Mx.NN.Upsample`, `Mx.NN.QuantizedLinear`,
      `Mx.NN.QuantizedEmbedding` (and `quantize/3`, MLX's `nn.quantize`)

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

  Quantized layers count their arrays as stored, as summing the sizes of
  MLX's `tree_flatten(model.parameters())` does: each packed u32 word counts
  once (it holds `32 / bits` weights), plus the scales and biases. A
  `{64, 64}` weight at 4 bits is `64 * 8 + 2 * 64 * 1 = 640` at group size
  64, where the dense weight was 4096.

      iex> q = Mx.NN.QuantizedLinear.from_linear(%{weight: Mx.ones({64, 64})}, group_size: 64, bits: 4)
      iex> Mx.NN.count_params(q)
      640
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
  Quantizes a `Mx.NN.Sequential` model (MLX's `nn.quantize(model, group_size,
  bits, class_predicate)`): returns `{params, layers}` with each selected
  `Mx.NN.Linear` replaced by `Mx.NN.QuantizedLinear` and each selected
  `Mx.NN.Embedding` by `Mx.NN.QuantizedEmbedding` (parameters through
  `Mx.NN.QuantizedLinear.from_linear/2` or
  `Mx.NN.QuantizedEmbedding.from_embedding/2`, spec options extended with
  `group_size:` and `bits:`); other layers are kept as they are. Run the
  result with `Mx.NN.Sequential.apply(params, x, layers: layers)`.

  Options: `group_size:` (default 64), `bits:` (default 4), and
  `class_predicate:`, a function `(path, layer_params)` of the layer's path
  in the parameter list (`[i]`) and its parameters, called for Linear and
  Embedding layers only: `true` quantizes with `group_size`/`bits`, `false`
  leaves the layer dense, and a keyword list `[group_size: g, bits: b]`
  quantizes that layer with its own scheme (as MLX's predicate returning a
  dict). By default every Linear and Embedding is quantized; one whose
  input dims are not a multiple of its group size raises, naming it.

      iex> layers = [{Mx.NN.Linear, input_dims: 64, output_dims: 8}, :relu, {Mx.NN.Linear, input_dims: 8, output_dims: 1}]
      iex> params = Mx.NN.Sequential.init(Mx.Random.key(0), layers: layers)
      iex> {qp, ql} = Mx.NN.quantize(params, layers, class_predicate: fn _path, p -> elem(p.weight.shape, 1) >= 64 end)
      iex> Enum.map(ql, fn {m, _} -> m; a -> a end)
      [Mx.NN.QuantizedLinear, :relu, Mx.NN.Linear]
      iex> Mx.NN.Sequential.apply(qp, Mx.ones({2, 64}), layers: ql) |> Mx.shape()
      {2, 1}
      iex> Mx.NN.quantize(params, layers, group_size: 32)
      ** (ArgumentError) Mx.NN.quantize: layer [2] (Mx.NN.Linear): the weight {1, 8}'s last axis (8) is not a multiple of group_size 32; pick a group_size that divides it or leave this layer dense
  """
  @spec quantize([map()], list(), keyword()) :: {[map()], list()}
  def quantize(params, layers, opts \\ []) do
    opts =
      Mx.Opts.validate!(opts, [group_size: 64, bits: 4, class_predicate: nil], "Mx.NN.quantize")

    predicate = opts[:class_predicate] || fn _path, _params -> true end

    unless is_function(predicate, 2) do
      raise ArgumentError,
            "Mx.NN.quantize: class_predicate must be a function of (path, layer_params), got #{inspect(predicate)}"
    end

    unless is_list(params) and is_list(layers) and length(params) == length(layers) do
      raise ArgumentError,
            "Mx.NN.quantize: expected a Sequential's params (a list) and its layer specs (a list of the same length)"
    end

    [params, layers, Enum.to_list(0..(length(layers) - 1)//1)]
    |> Enum.zip_with(fn [p, spec, i] -> quantize_layer(p, spec, [i], predicate, opts) end)
    |> Enum.unzip()
  end

  @quantized %{Mx.NN.Linear => Mx.NN.QuantizedLinear, Mx.NN.Embedding => Mx.NN.QuantizedEmbedding}

  defp quantize_layer(p, {module, lopts} = spec, path, predicate, opts)
       when is_map_key(@quantized, module) do
    where = "Mx.NN.quantize: layer #{inspect(path)} (#{inspect(module)})"

    scheme =
      case predicate.(path, p) do
        false ->
          nil

        true ->
          [group_size: opts[:group_size], bits: opts[:bits]]

        kw when is_list(kw) ->
          kw = Mx.Opts.validate!(kw, Keyword.take(opts, [:group_size, :bits]), where)
          [group_size: kw[:group_size], bits: kw[:bits]]

        other ->
          raise ArgumentError,
                "#{where}: class_predicate must return true, false or [group_size: g, bits: b], got #{inspect(other)}"
      end

    if scheme,
      do:
        {Mx.NN.QuantizedLinear.quantize_weight(p, scheme, where),
         {@quantized[module], lopts ++ scheme}},
      else: {p, spec}
  end

  defp quantize_layer(p, spec, _path, _predicate, _opts), do: {p, spec}

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
