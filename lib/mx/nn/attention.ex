defmodule Mx.NN.MultiHeadAttention do
  @moduledoc """
  Multi-head attention (MLX's `nn.MultiHeadAttention`): queries, keys and
  values are projected, split into `num_heads:` heads, combined by
  `Mx.NN.scaled_dot_product_attention/4` and projected back.

  Options: `dims:` and `num_heads:` (required; `dims` divisible by the
  heads), `query_input_dims:`, `key_input_dims:`, `value_input_dims:`
  (default `dims`), `value_dims:` (default `dims`), `value_output_dims:`
  (default `dims`), `bias:` (default false), `type:`; for `apply/3`,
  `mask:` (see `Mx.NN.scaled_dot_product_attention/4`; it broadcasts
  against `{batch, heads, Lq, Lk}`). Parameters: `Mx.NN.Linear` maps
  `:query_proj`, `:key_proj`, `:value_proj`, `:out_proj`.

  The input is `{queries, keys, values}` (`{batch, L, features}` each) or
  one array for self-attention.

      iex> p = Mx.NN.MultiHeadAttention.init(Mx.Random.key(0), dims: 8, num_heads: 2)
      iex> Mx.NN.MultiHeadAttention.apply(p, Mx.ones({3, 5, 8}), num_heads: 2, mask: :causal) |> Mx.shape()
      {3, 5, 8}
  """

  @keys [
    :dims,
    :num_heads,
    :query_input_dims,
    :key_input_dims,
    :value_input_dims,
    :value_dims,
    :value_output_dims,
    :mask,
    bias: false,
    type: :f32
  ]

  @doc "The four projections' parameters."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.MultiHeadAttention.init")
    d = Mx.NN.required!(opts, :dims, "Mx.NN.MultiHeadAttention.init")
    h = Mx.NN.required!(opts, :num_heads, "Mx.NN.MultiHeadAttention.init")

    if rem(d, h) != 0,
      do:
        raise(
          ArgumentError,
          "Mx.NN.MultiHeadAttention.init: dims (#{d}) must be divisible by num_heads (#{h})"
        )

    vd = opts[:value_dims] || d
    [kq, kk, kv, ko] = Mx.NN.split_keys(key, 4)

    lin = fn k, i, o ->
      Mx.NN.Linear.init(k, input_dims: i, output_dims: o, bias: opts[:bias], type: opts[:type])
    end

    %{
      query_proj: lin.(kq, opts[:query_input_dims] || d, d),
      key_proj: lin.(kk, opts[:key_input_dims] || d, d),
      value_proj: lin.(kv, opts[:value_input_dims] || d, vd),
      out_proj: lin.(ko, vd, opts[:value_output_dims] || d)
    }
  end

  @doc "Attention of the queries over the keys and values (see the module doc)."
  @spec apply(map(), Mx.Array.t() | {Mx.Array.t(), Mx.Array.t(), Mx.Array.t()}, keyword()) ::
          Mx.Array.t()
  def apply(params, input, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.MultiHeadAttention.apply")
    h = Mx.NN.required!(opts, :num_heads, "Mx.NN.MultiHeadAttention.apply")
    {q, k, v} = if is_tuple(input), do: input, else: {input, input, input}
    q = q |> lin(params.query_proj) |> heads(h)
    k = k |> lin(params.key_proj) |> heads(h)
    v = v |> lin(params.value_proj) |> heads(h)
    out = Mx.NN.scaled_dot_product_attention(q, k, v, mask: opts[:mask])
    {b, _, l, dh} = out.shape
    out |> Mx.transpose(axes: [0, 2, 1, 3]) |> Mx.reshape({b, l, h * dh}) |> lin(params.out_proj)
  end

  defp lin(x, p), do: Mx.NN.Linear.apply(p, x)

  # {batch, L, d} -> {batch, heads, L, d/heads}
  defp heads(x, h) do
    {b, l, d} = x.shape

    if rem(d, h) != 0,
      do:
        raise(
          ArgumentError,
          "Mx.NN.MultiHeadAttention.apply: #{d} features are not divisible by num_heads (#{h})"
        )

    x |> Mx.reshape({b, l, h, div(d, h)}) |> Mx.transpose(axes: [0, 2, 1, 3])
  end
end

defmodule Mx.NN.TransformerEncoderLayer do
  @moduledoc """
  A transformer encoder layer (MLX's `nn.TransformerEncoderLayer`): self
  attention and an MLP, each in a residual block with layer normalization,
  before the block with `norm_first: true` (the default) or after it.

  Options: `dims:`, `num_heads:` (required), `mlp_dims:` (default
  `4·dims`), `dropout:` (default 0, used in training), `activation:` (an
  activation name, default `:relu`), `norm_first:`, `bias:` (attention
  projections' bias, default false), `eps:` (layer norms, 1e-5), `type:`;
  for `apply/3`, `mask:`. Parameters `%{attention:, ln1:, ln2:, linear1:,
  linear2:}`. Input `{batch, L, dims}`.

      iex> p = Mx.NN.TransformerEncoderLayer.init(Mx.Random.key(0), dims: 8, num_heads: 2)
      iex> Mx.NN.TransformerEncoderLayer.apply(p, Mx.ones({2, 3, 8}), num_heads: 2) |> Mx.shape()
      {2, 3, 8}
  """

  @keys [
    :dims,
    :num_heads,
    :mlp_dims,
    :mask,
    dropout: 0.0,
    activation: :relu,
    norm_first: true,
    bias: false,
    eps: 1.0e-5,
    type: :f32
  ]

  @doc "The parameters (see the module doc)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.TransformerEncoderLayer.init")
    d = Mx.NN.required!(opts, :dims, "Mx.NN.TransformerEncoderLayer.init")
    [ka, k1, k2] = Mx.NN.split_keys(key, 3)

    Map.merge(Mx.NN.Transformer.mlp_init(k1, k2, d, opts), %{
      attention: Mx.NN.Transformer.attention_init(ka, d, opts),
      ln1: Mx.NN.LayerNorm.init(nil, dims: d, type: opts[:type]),
      ln2: Mx.NN.LayerNorm.init(nil, dims: d, type: opts[:type])
    })
  end

  @doc "The layer's output, `{batch, L, dims}`."
  @spec apply(map(), Mx.Array.t(), keyword()) :: Mx.Array.t()
  def apply(params, x, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.TransformerEncoderLayer.apply")
    t = Mx.NN.Transformer.ctx(opts, 2)

    attn = fn y ->
      t.drop.(0, Mx.NN.Transformer.attention(params.attention, {y, y, y}, opts[:mask], opts))
    end

    if opts[:norm_first] do
      x = Mx.add(x, attn.(t.ln.(params.ln1, x)))
      Mx.add(x, Mx.NN.Transformer.mlp(params, t.ln.(params.ln2, x), t, 1))
    else
      x = t.ln.(params.ln1, Mx.add(x, attn.(x)))
      t.ln.(params.ln2, Mx.add(x, Mx.NN.Transformer.mlp(params, x, t, 1)))
    end
  end
end

defmodule Mx.NN.TransformerDecoderLayer do
  @moduledoc """
  A transformer decoder layer (MLX's `nn.TransformerDecoderLayer`): self
  attention, cross attention over `memory`, and an MLP, each in a residual
  block with layer normalization (before with `norm_first: true`, the
  default, or after). The input is `{x, memory}`.

  Options as `Mx.NN.TransformerEncoderLayer`, with `mask:` for the self
  attention and `memory_mask:` for the cross attention. Parameters
  `%{self_attention:, cross_attention:, ln1:, ln2:, ln3:, linear1:, linear2:}`.

      iex> p = Mx.NN.TransformerDecoderLayer.init(Mx.Random.key(0), dims: 8, num_heads: 2)
      iex> Mx.NN.TransformerDecoderLayer.apply(p, {Mx.ones({2, 3, 8}), Mx.ones({2, 4, 8})}, num_heads: 2, mask: :causal) |> Mx.shape()
      {2, 3, 8}
  """

  @keys [
    :dims,
    :num_heads,
    :mlp_dims,
    :mask,
    :memory_mask,
    dropout: 0.0,
    activation: :relu,
    norm_first: true,
    bias: false,
    eps: 1.0e-5,
    type: :f32
  ]

  @doc "The parameters (see the module doc)."
  @spec init(Mx.Random.key(), keyword()) :: map()
  def init(key, opts) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.TransformerDecoderLayer.init")
    d = Mx.NN.required!(opts, :dims, "Mx.NN.TransformerDecoderLayer.init")
    [ks, kc, k1, k2] = Mx.NN.split_keys(key, 4)
    ln = fn -> Mx.NN.LayerNorm.init(nil, dims: d, type: opts[:type]) end

    Map.merge(Mx.NN.Transformer.mlp_init(k1, k2, d, opts), %{
      self_attention: Mx.NN.Transformer.attention_init(ks, d, opts),
      cross_attention: Mx.NN.Transformer.attention_init(kc, d, opts),
      ln1: ln.(),
      ln2: ln.(),
      ln3: ln.()
    })
  end

  @doc "The layer's output for `{x, memory}`, shaped as `x`."
  @spec apply(map(), {Mx.Array.t(), Mx.Array.t()}, keyword()) :: Mx.Array.t()
  def apply(params, {x, memory}, opts \\ []) do
    opts = Mx.NN.layer_opts!(opts, @keys, "Mx.NN.TransformerDecoderLayer.apply")
    t = Mx.NN.Transformer.ctx(opts, 3)

    self_attn = fn y ->
      t.drop.(0, Mx.NN.Transformer.attention(params.self_attention, {y, y, y}, opts[:mask], opts))
    end

    cross_attn = fn y ->
      t.drop.(
        1,
        Mx.NN.Transformer.attention(
          params.cross_attention,
          {y, memory, memory},
          opts[:memory_mask],
          opts
        )
      )
    end

    if opts[:norm_first] do
      x = Mx.add(x, self_attn.(t.ln.(params.ln1, x)))
      x = Mx.add(x, cross_attn.(t.ln.(params.ln2, x)))
      Mx.add(x, Mx.NN.Transformer.mlp(params, t.ln.(params.ln3, x), t, 2))
    else
      x = t.ln.(params.ln1, Mx.add(x, self_attn.(x)))
      x = t.ln.(params.ln2, Mx.add(x, cross_attn.(x)))
      t.ln.(params.ln3, Mx.add(x, Mx.NN.Transformer.mlp(params, x, t, 2)))
    end
  end
end

defmodule Mx.NN.Transformer do
  @moduledoc false
  # Shared by the encoder and decoder layers.

  def attention_init(key, d, opts) do
    h = Mx.NN.required!(opts, :num_heads, "Mx.NN.Transformer")

    Mx.NN.MultiHeadAttention.init(key, dims: d, num_heads: h, bias: opts[:bias], type: opts[:type])
  end

  def mlp_init(k1, k2, d, opts) do
    m = opts[:mlp_dims] || 4 * d

    %{
      linear1: Mx.NN.Linear.init(k1, input_dims: d, output_dims: m, type: opts[:type]),
      linear2: Mx.NN.Linear.init(k2, input_dims: m, output_dims: d, type: opts[:type])
    }
  end

  def attention(p, qkv, mask, opts),
    do: Mx.NN.MultiHeadAttention.apply(p, qkv, num_heads: opts[:num_heads], mask: mask)

  # Layer norm, activation and dropout for one call: dropout i draws from the i-th split of key:.
  def ctx(opts, n_dropouts) do
    act = opts[:activation]

    unless act in Mx.NN.Activations.names(),
      do:
        raise(
          ArgumentError,
          "Mx.NN.Transformer: activation must be an Mx.NN.Activations name, got #{inspect(act)}"
        )

    rate = opts[:dropout]

    keys =
      if opts[:mode] == :train and rate > 0 and opts[:key],
        do: Mx.NN.split_keys(opts[:key], n_dropouts),
        else: nil

    %{
      ln: fn p, x -> Mx.NN.LayerNorm.apply(p, x, eps: opts[:eps]) end,
      act: fn x -> Kernel.apply(Mx.NN.Activations, act, [x]) end,
      drop: fn i, x ->
        Mx.NN.Dropout.apply(%{}, x, rate: rate, mode: opts[:mode], key: keys && Enum.at(keys, i))
      end
    }
  end

  def mlp(params, x, t, drop_index) do
    y =
      x
      |> then(&Mx.NN.Linear.apply(params.linear1, &1))
      |> t.act.()
      |> then(&t.drop.(drop_index, &1))

    Mx.NN.Linear.apply(params.linear2, y)
  end
end
