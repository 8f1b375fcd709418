defmodule Mx.NN.QuantizedLinear do
  @moduledoc """
  `y = x Wᵀ + b` with `W` quantized (MLX's `nn.QuantizedLinear`, affine mode):
  `Mx.Quantize.quantized_matmul/5` against the packed weight, never expanded.
  Options: those of `Mx.NN.Linear` plus `group_size:` (32, 64 or 128; default
  64) and `bits:` (2, 4 or 8; default 4), which `apply/3` needs too (the
  packed shapes do not determine both). Parameters `%{weight: u32 {output_dims,
  input_dims * bits / 32}, scales: {output_dims, input_dims / group_size},
  biases: {output_dims, input_dims / group_size}, bias: {output_dims}}` (`bias`
  optional), as MLX checkpoints store them. The quantized arrays are frozen,
  as MLX freezes them: a gradient with respect to them raises, so
  differentiate the other parameters only (the bias, other layers), with
  the quantized ones closed over. The gradient with respect to `x` flows.

      iex> lin = %{weight: Mx.remainder(Mx.iota({1, 32}, type: :f32), 4.0), bias: Mx.tensor([0.5])}
      iex> q = Mx.NN.QuantizedLinear.from_linear(lin, group_size: 32, bits: 2)
      iex> Mx.NN.QuantizedLinear.apply(q, Mx.ones({1, 32}), group_size: 32, bits: 2) |> Mx.to_list()
      [[48.5]]
  """

  @scheme [group_size: 64, bits: 4]
  @keys [:input_dims, :output_dims, bias: true, type: :f32] ++ @scheme

  @doc "`Mx.NN.Linear.init/2`'s parameters, then quantized (see the module doc)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.QuantizedLinear.init")
    {scheme, linear} = Keyword.split(opts, Keyword.keys(@scheme) ++ [:mode, :key])
    Mx.NN.Linear.init(key, linear) |> quantize_weight(scheme, "Mx.NN.QuantizedLinear.init")
  end

  @doc """
  A `Mx.NN.Linear`'s parameters quantized (MLX's `QuantizedLinear.from_linear`):
  the weight with `Mx.Quantize.quantize/2`, a bias kept as it is. Options:
  `group_size:`, `bits:`. The input dims must be a multiple of `group_size`.

      iex> Mx.NN.QuantizedLinear.from_linear(%{weight: Mx.ones({2, 48})}, group_size: 32)
      ** (ArgumentError) Mx.NN.QuantizedLinear.from_linear: the weight {2, 48}'s last axis (48) is not a multiple of group_size 32; pick a group_size that divides it or leave this layer dense
  """
  @spec from_linear(map(), keyword()) :: map()
  def from_linear(params, opts \\ []) do
    opts = Mx.Opts.validate!(opts, @scheme, "Mx.NN.QuantizedLinear.from_linear")
    quantize_weight(params, opts, "Mx.NN.QuantizedLinear.from_linear")
  end

  @doc false
  # Quantizes `params.weight` along its last axis, checking the group first so the error names the layer.
  def quantize_weight(%{weight: %Mx.Array{shape: shape}} = params, scheme, where)
      when tuple_size(shape) > 0 do
    {gs, k} = {scheme[:group_size], elem(shape, tuple_size(shape) - 1)}

    # A non-integer group_size is left to Mx.Quantize.quantize/2, which says what it must be.
    if is_integer(gs) and gs > 0 and rem(k, gs) != 0 do
      raise ArgumentError,
            "#{where}: the weight #{inspect(shape)}'s last axis (#{k}) is not a multiple of group_size #{gs}; pick a group_size that divides it or leave this layer dense"
    end

    {w_q, scales, biases} =
      Mx.Quantize.quantize(params.weight, Keyword.take(scheme, [:group_size, :bits]))

    Map.merge(params, %{weight: w_q, scales: scales, biases: biases})
  end

  def quantize_weight(params, _scheme, where) do
    got =
      if is_map(params), do: "keys #{inspect(Map.keys(params))}", else: inspect(params, limit: 5)

    raise ArgumentError,
          "#{where}: expected a parameter map with a :weight array of rank 1 or more, got #{got}"
  end

  @doc "Applies the layer to `x` of shape `{..., input_dims}` (pass the `group_size:` and `bits:` it was quantized with)."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.QuantizedLinear.apply")

    y =
      Mx.Quantize.quantized_matmul(
        x,
        params.weight,
        params.scales,
        params.biases,
        [transpose: true] ++ Keyword.take(opts, [:group_size, :bits])
      )

    if b = params[:bias], do: Mx.add(y, b), else: y
  end
end

defmodule Mx.NN.QuantizedEmbedding do
  @moduledoc """
  `Mx.NN.Embedding` with the table quantized (MLX's `nn.QuantizedEmbedding`):
  a lookup takes the packed rows, scales and biases of the indices and
  dequantizes only those. Options: those of `Mx.NN.Embedding` plus
  `group_size:` (default 64) and `bits:` (default 4), which `apply/3` and
  `as_linear/3` need too. Parameters `%{weight: u32 {num_embeddings, dims *
  bits / 32}, scales: {num_embeddings, dims / group_size}, biases: (same)}`.

      iex> emb = %{weight: Mx.remainder(Mx.iota({2, 32}, type: :f32), 4.0)}
      iex> q = Mx.NN.QuantizedEmbedding.from_embedding(emb, group_size: 32, bits: 2)
      iex> Mx.NN.QuantizedEmbedding.apply(q, Mx.tensor([1]), group_size: 32, bits: 2) |> Mx.sum() |> Mx.to_number()
      48.0
  """

  @scheme [group_size: 64, bits: 4]
  @keys [:num_embeddings, :dims, type: :f32] ++ @scheme

  @doc "`Mx.NN.Embedding.init/2`'s table, then quantized."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.QuantizedEmbedding.init")
    {scheme, emb} = Keyword.split(opts, Keyword.keys(@scheme) ++ [:mode, :key])

    Mx.NN.Embedding.init(key, emb)
    |> Mx.NN.QuantizedLinear.quantize_weight(scheme, "Mx.NN.QuantizedEmbedding.init")
  end

  @doc """
  A `Mx.NN.Embedding`'s table quantized along `dims` (MLX's
  `QuantizedEmbedding.from_embedding`). Options: `group_size:`, `bits:`.

      iex> Mx.NN.QuantizedEmbedding.from_embedding(%{weight: Mx.ones({4, 40})}, group_size: 32)
      ** (ArgumentError) Mx.NN.QuantizedEmbedding.from_embedding: the weight {4, 40}'s last axis (40) is not a multiple of group_size 32; pick a group_size that divides it or leave this layer dense
  """
  @spec from_embedding(map(), keyword()) :: map()
  def from_embedding(params, opts \\ []) do
    opts = Mx.Opts.validate!(opts, @scheme, "Mx.NN.QuantizedEmbedding.from_embedding")
    Mx.NN.QuantizedLinear.quantize_weight(params, opts, "Mx.NN.QuantizedEmbedding.from_embedding")
  end

  @doc "The dequantized rows for integer indices of any shape: shape `{..., dims}`."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, indices, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.QuantizedEmbedding.apply")
    take = &Mx.take(&1, indices, axis: 0)

    Mx.Quantize.dequantize(
      take.(params.weight),
      take.(params.scales),
      take.(params.biases),
      Keyword.take(opts, [:group_size, :bits])
    )
  end

  @doc """
  The table used as a linear output layer (weight tying, MLX's `as_linear`):
  `x Wᵀ` through `Mx.Quantize.quantized_matmul/5`. Options: `group_size:`, `bits:`.

      iex> q = Mx.NN.QuantizedEmbedding.from_embedding(%{weight: Mx.ones({3, 32})}, group_size: 32)
      iex> Mx.NN.QuantizedEmbedding.as_linear(q, Mx.ones({1, 32}), group_size: 32) |> Mx.to_list()
      [[32.0, 32.0, 32.0]]
  """
  @spec as_linear(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def as_linear(params, x, opts \\ []) do
    opts = Mx.Opts.validate!(opts, @scheme, "Mx.NN.QuantizedEmbedding.as_linear")
    Mx.NN.QuantizedLinear.apply(Map.take(params, [:weight, :scales, :biases]), x, opts)
  end
end
