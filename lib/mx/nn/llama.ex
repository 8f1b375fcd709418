defmodule Mx.NN.Llama do
  @moduledoc """
  A Llama-architecture decoder loaded from a checkpoint in MLX's format
  (mlx-lm's `models/llama.py`: a directory with `config.json` and
  `model*.safetensors` under the Hugging Face names), run with a KV cache.

  The math is mlx-lm's and Hugging Face's `LlamaForCausalLM`: token
  embedding; per layer `x + o(attn(rope(q), rope(k), v))` after an RMSNorm,
  then `x + down(silu(gate(h)) · up(h))` after another; a final RMSNorm and
  the output layer (`lm_head`, or the embedding when `tie_word_embeddings`).
  Grouped-query attention lets `num_key_value_heads` divide the query heads;
  query head `i` reads key/value head `i ÷ (heads / kv_heads)`.

  Weights in f16 or bf16 are converted to f32 on load and everything
  computes in f32. A checkpoint with a `"quantization": {"group_size",
  "bits"}` config holds each quantized layer as MLX writes it (`weight`
  packed u32, `scales`, `biases`); those run through
  `Mx.NN.QuantizedLinear` and `Mx.NN.QuantizedEmbedding` (rows
  dequantized as they are taken), with scales and biases in f32. A layer
  without `scales` stays dense, as in mlx-lm. Weights keep the checkpoint's
  `{out, in}` layout (the matmul reads their transpose through a BLAS flag,
  no copy), so a tied embedding is held once.

      iex> model = Mx.NN.Llama.load("test/fixtures/llama_tiny/f32")
      iex> {logits, cache} = Mx.NN.Llama.forward(model, [1, 17, 42])
      iex> {Mx.shape(logits), cache.offset}
      {{3, 97}, 3}
      iex> Mx.NN.Llama.generate(model, [1, 17, 42], max_tokens: 4) |> length()
      4

  ## The KV cache

  `forward/3` returns the cache with this step's keys and values
  concatenated after the earlier ones (`{batch, kv_heads, offset, head_dim}`
  per layer). A step costs one copy of the cache per layer, the same order
  as the attention over it, and memory holds only the cache itself: the
  engine has no in-place update, so a preallocated buffer would be copied
  whole at every step anyway.
  """

  alias Mx.NN.{RMSNorm, RoPE}

  @enforce_keys [:config, :params]
  defstruct [:config, :params]

  @type t :: %__MODULE__{config: map(), params: map()}
  @type cache :: %{offset: non_neg_integer(), layers: [{Mx.Array.t(), Mx.Array.t()}]} | nil

  # Keys of config.json that do not change the math (mlx-lm reads none of them for Llama).
  @ignored ~w(architectures bos_token_id eos_token_id pad_token_id max_position_embeddings
              initializer_range torch_dtype dtype transformers_version use_cache attention_dropout
              pretraining_tp _name_or_path)
  @used ~w(model_type hidden_size num_hidden_layers intermediate_size num_attention_heads
           num_key_value_heads head_dim rms_norm_eps vocab_size rope_theta rope_traditional
           rope_scaling tie_word_embeddings attention_bias mlp_bias hidden_act quantization
           quantization_config layer_types sliding_window)

  @doc """
  Loads the model in directory `dir`: `config.json` and every
  `model*.safetensors` file (shards included).

  Options: `ignore_keys:` (config keys to accept unread; any key this
  module does not know raises, since it might change the math).

  A config that asks for what is not implemented (a `rope_scaling` type
  other than `"linear"` or `"llama3"`, sliding-window layers, an activation other than
  silu, a quantization mode other than affine) raises, as does a missing,
  mis-shaped, mistyped or unexpected tensor (naming it and the expected
  shape). As mlx-lm does, `model_type` may be `"llama"` or `"mistral"`,
  `tie_word_embeddings` defaults to true, and `lm_head.weight` and
  `rotary_emb.inv_freq` tensors are dropped when unused.

      iex> Mx.NN.Llama.load("test/fixtures/llama_tiny/q4").config.quantization
      %{bits: 4, group_size: 32}
      iex> Mx.NN.Llama.load("test/fixtures/llama_tiny/f32", ignore_keys: 3)
      ** (ArgumentError) Mx.NN.Llama.load: ignore_keys: must be a list of strings, got 3
  """
  @spec load(Path.t(), keyword()) :: t()
  def load(dir, opts \\ []) do
    opts = Mx.Opts.validate!(opts, [ignore_keys: []], "Mx.NN.Llama.load")

    unless is_list(opts[:ignore_keys]) and Enum.all?(opts[:ignore_keys], &is_binary/1) do
      raise ArgumentError,
            "Mx.NN.Llama.load: ignore_keys: must be a list of strings, got #{inspect(opts[:ignore_keys])}"
    end

    config = dir |> read_config() |> config!(opts[:ignore_keys])
    %__MODULE__{config: config, params: params!(config, read_weights(dir))}
  end

  @doc """
  Logits for `tokens` following those in `cache` (`nil`: none), and the
  cache with them added. `tokens` is a list of token ids, an integer array
  `{length}` (logits `{length, vocab}`) or `{batch, length}` (logits
  `{batch, length, vocab}`). The logits are lazy; the new cache is
  evaluated before it is returned, so no graph grows across steps.

      iex> model = Mx.NN.Llama.load("test/fixtures/llama_tiny/f32")
      iex> {_, cache} = Mx.NN.Llama.forward(model, Mx.tensor([[1, 2]]))
      iex> {logits, cache} = Mx.NN.Llama.forward(model, Mx.tensor([[3]]), cache)
      iex> {Mx.shape(logits), cache.offset}
      {{1, 1, 97}, 3}
  """
  @spec forward(t(), [non_neg_integer()] | Mx.Array.t(), cache()) :: {Mx.Array.t(), cache()}
  def forward(%__MODULE__{} = model, tokens, cache \\ nil) do
    {tokens, batched?} = tokens!(tokens, model.config, cache)
    {x, cache} = hidden(model, tokens, cache)
    logits = output(model, x)
    {if(batched?, do: logits, else: Mx.squeeze(logits, axes: [0])), cache}
  end

  @doc """
  Greedy decoding: the ids of up to `max_tokens:` tokens following
  `prompt` (a list of ids), each the argmax of the logits. Stops early
  after a token in `stop_tokens:` (default `[]`; that token is returned).

      iex> model = Mx.NN.Llama.load("test/fixtures/llama_tiny/f32")
      iex> Mx.NN.Llama.generate(model, [1, 17, 42, 5, 88, 23, 64, 9, 31], max_tokens: 3)
      [34, 93, 34]
      iex> Mx.NN.Llama.generate(model, [1, 17, 42, 5, 88, 23, 64, 9, 31], max_tokens: 3, stop_tokens: [93])
      [34, 93]
  """
  @spec generate(t(), [non_neg_integer()], keyword()) :: [non_neg_integer()]
  def generate(%__MODULE__{} = model, prompt, opts) do
    opts = Mx.Opts.validate!(opts, [:max_tokens, stop_tokens: []], "Mx.NN.Llama.generate")
    max = Mx.NN.required!(opts, :max_tokens, "Mx.NN.Llama.generate")

    unless is_list(opts[:stop_tokens]) and Enum.all?(opts[:stop_tokens], &is_integer/1) do
      raise ArgumentError,
            "Mx.NN.Llama.generate: stop_tokens: must be a list of token ids, got #{inspect(opts[:stop_tokens])}"
    end

    unless is_list(prompt) and prompt != [] do
      raise ArgumentError,
            "Mx.NN.Llama.generate: the prompt must be a non-empty list of token ids, got #{inspect(prompt)}"
    end

    {tokens, _} = tokens!(prompt, model.config, nil)
    next_token(model, tokens, nil, max, opts[:stop_tokens], [])
  end

  defp next_token(_model, _tokens, _cache, 0, _stop, acc), do: Enum.reverse(acc)

  defp next_token(model, tokens, cache, left, stop, acc) do
    {x, cache} = hidden(model, tokens, cache)
    # Only the last position's logits are needed.
    last = Mx.slice_axis(x, elem(x.shape, 1) - 1, 1, 1)
    id = model |> output(last) |> Mx.argmax(axis: -1) |> Mx.reshape({1, 1})
    token = id |> Mx.eval() |> Mx.to_number()
    acc = [token | acc]

    if token in stop,
      do: Enum.reverse(acc),
      else: next_token(model, Mx.as_type(id, :s32), cache, left - 1, stop, acc)
  end

  # ---- the network ----------------------------------------------------------------------

  defp hidden(%{config: c, params: p}, tokens, cache) do
    offset = if cache, do: cache.offset, else: 0
    past = if cache, do: cache.layers, else: List.duplicate(nil, c.layers)
    x = embed(p.embed, tokens, c)

    {layers, x} =
      p.layers
      |> Enum.zip(past)
      |> Enum.map_reduce(x, fn {layer, kv}, x ->
        {x, kv} = block(layer, x, kv, offset, c)
        {kv, x}
      end)

    layers = Mx.eval(layers)

    {RMSNorm.apply(%{weight: p.norm}, x, eps: c.eps),
     %{offset: offset + elem(tokens.shape, 1), layers: layers}}
  end

  defp block(p, x, kv, offset, c) do
    {b, l, _} = x.shape
    h = RMSNorm.apply(%{weight: p.input_norm}, x, eps: c.eps)
    q = h |> linear(p.q, c) |> heads(b, l, c.heads, c.head_dim) |> rope(offset, c)
    k = h |> linear(p.k, c) |> heads(b, l, c.kv_heads, c.head_dim) |> rope(offset, c)
    v = h |> linear(p.v, c) |> heads(b, l, c.kv_heads, c.head_dim)

    {k, v} =
      case kv do
        nil -> {k, v}
        {pk, pv} -> {Mx.concatenate([pk, k], axis: 2), Mx.concatenate([pv, v], axis: 2)}
      end

    mask = if l > 1, do: :causal

    att =
      Mx.NN.scaled_dot_product_attention(q, k, v, mask: mask)
      |> Mx.transpose(axes: [0, 2, 1, 3])
      |> Mx.reshape({b, l, c.heads * c.head_dim})

    x = Mx.add(x, linear(att, p.o, c))
    h = RMSNorm.apply(%{weight: p.post_norm}, x, eps: c.eps)
    gated = Mx.multiply(Mx.NN.Activations.silu(linear(h, p.gate, c)), linear(h, p.up, c))
    {Mx.add(x, linear(gated, p.down, c)), {k, v}}
  end

  # {b, l, n·d} -> {b, n, l, d}
  defp heads(x, b, l, n, d), do: x |> Mx.reshape({b, l, n, d}) |> Mx.transpose(axes: [0, 2, 1, 3])

  defp rope(x, offset, c),
    do:
      RoPE.apply(
        %{},
        x,
        [dims: c.head_dim, traditional: c.rope_traditional, offset: offset] ++ c.rope
      )

  defp linear(x, %{scales: _} = p, c),
    do: Mx.NN.QuantizedLinear.apply(p, x, Map.to_list(c.quantization))

  defp linear(x, p, _c), do: Mx.NN.Linear.apply(p, x)

  defp embed(%{scales: _} = p, tokens, c),
    do: Mx.NN.QuantizedEmbedding.apply(p, tokens, Map.to_list(c.quantization))

  defp embed(p, tokens, _c), do: Mx.NN.Embedding.apply(p, tokens)

  defp output(%{config: c, params: p}, x), do: linear(x, p.lm_head, c)

  defp tokens!(tokens, c, cache) when is_list(tokens) do
    unless tokens != [] and Enum.all?(tokens, &is_integer/1) do
      raise ArgumentError,
            "Mx.NN.Llama.forward: tokens must be a non-empty list of integer ids, got #{inspect(tokens)}"
    end

    {t, _} = tokens!(Mx.tensor([tokens], type: :s32), c, cache)
    {t, false}
  end

  defp tokens!(%Mx.Array{shape: {l}} = t, c, cache) when l > 0 do
    {t, _} = tokens!(Mx.reshape(t, {1, l}), c, cache)
    {t, false}
  end

  defp tokens!(%Mx.Array{shape: {b, l}} = t, c, cache) when b > 0 and l > 0 do
    cond do
      not Mx.Type.integer?(t.type) ->
        raise ArgumentError, "Mx.NN.Llama.forward: tokens must be integers, got #{Mx.describe(t)}"

      cache && cache_batch(cache) != b ->
        raise ArgumentError,
              "Mx.NN.Llama.forward: tokens #{Mx.describe(t)} do not match the cache's batch of #{cache_batch(cache)}"

      true ->
        # An id outside the vocabulary would read another row (take wraps negatives).
        bad =
          t
          |> Mx.less(0)
          |> Mx.logical_or(Mx.greater_equal(t, c.vocab))
          |> Mx.any()
          |> Mx.to_number()

        if bad in [true, 1] do
          raise ArgumentError,
                "Mx.NN.Llama.forward: token ids must be in 0..#{c.vocab - 1}, got #{inspect(Mx.to_list(t))}"
        end

        {t, true}
    end
  end

  defp tokens!(t, _c, _cache) do
    raise ArgumentError,
          "Mx.NN.Llama.forward: tokens must be a list of ids or a non-empty integer array {length} or {batch, length}, got #{inspect(t)}"
  end

  defp cache_batch(%{layers: [{k, _} | _]}), do: elem(k.shape, 0)

  # ---- loading --------------------------------------------------------------------------

  defp read_config(dir) do
    path = Path.join(dir, "config.json")

    text =
      case File.read(path) do
        {:ok, text} ->
          text

        {:error, why} ->
          raise ArgumentError, "Mx.NN.Llama.load: cannot read #{path}: #{:file.format_error(why)}"
      end

    case Mx.IO.JSON.decode(text) do
      {:ok, %{} = map} ->
        map

      {:ok, other} ->
        raise ArgumentError,
              "Mx.NN.Llama.load: #{path} must hold a JSON object, got #{inspect(other)}"

      {:error, why} ->
        raise ArgumentError, "Mx.NN.Llama.load: #{path} is not valid JSON: #{why}"
    end
  end

  defp read_weights(dir) do
    case Path.wildcard(Path.join(dir, "model*.safetensors")) do
      [] ->
        raise ArgumentError, "Mx.NN.Llama.load: no model*.safetensors file in #{dir}"

      files ->
        Enum.reduce(files, %{}, fn f, acc ->
          Map.merge(acc, Mx.IO.load_safetensors(f), fn name, _, _ ->
            raise ArgumentError,
                  "Mx.NN.Llama.load: tensor #{inspect(name)} is in more than one file of #{dir}"
          end)
        end)
    end
  end

  @doc false
  # The config as this module uses it; raises on what it cannot honour.
  def config!(json, ignore \\ []) do
    unknown = Map.keys(json) -- (@used ++ @ignored ++ ignore)

    if unknown != [] do
      raise ArgumentError,
            "Mx.NN.Llama.load: config.json has keys this loader does not know, which may change the model's math: #{inspect(Enum.sort(unknown))}; pass ignore_keys: [...] if they do not"
    end

    get = fn key, default, check ->
      value = Map.get(json, key, default)

      unless check.(value) do
        raise ArgumentError,
              "Mx.NN.Llama.load: config.json's #{key} is #{inspect(value)}, which is not supported"
      end

      value
    end

    pos = &(is_integer(&1) and &1 > 0)
    required = fn key -> get.(key, nil, pos) end
    model_type = get.("model_type", nil, &(&1 in ["llama", "mistral"]))
    heads = required.("num_attention_heads")
    hidden = required.("hidden_size")
    kv_heads = get.("num_key_value_heads", heads, &(pos.(&1) and rem(heads, &1) == 0))
    head_dim = get.("head_dim", nil, &(is_nil(&1) or pos.(&1))) || div(hidden, heads)

    if rem(head_dim, 2) != 0 do
      raise ArgumentError, "Mx.NN.Llama.load: head_dim #{head_dim} must be even for RoPE"
    end

    get.("hidden_act", "silu", &(&1 == "silu"))
    get.("layer_types", nil, &(is_nil(&1) or Enum.all?(&1, fn t -> t == "full_attention" end)))
    get.("sliding_window", nil, &is_nil/1)

    if json["quantization_config"] && !json["quantization"] do
      raise ArgumentError,
            "Mx.NN.Llama.load: config.json has a quantization_config but no quantization: only MLX's affine quantization (\"quantization\": {\"group_size\", \"bits\"}) is supported"
    end

    %{
      model_type: model_type,
      hidden: hidden,
      layers: required.("num_hidden_layers"),
      intermediate: required.("intermediate_size"),
      heads: heads,
      kv_heads: kv_heads,
      head_dim: head_dim,
      vocab: required.("vocab_size"),
      eps: get.("rms_norm_eps", nil, &(is_number(&1) and &1 >= 0)) * 1.0,
      rope_traditional: get.("rope_traditional", false, &is_boolean/1),
      # RoPE.apply's options for base, scale and freqs
      rope:
        rope_opts!(
          get.("rope_scaling", nil, &(is_nil(&1) or is_map(&1))),
          get.("rope_theta", 10_000, &(is_number(&1) and &1 > 0)) * 1.0,
          head_dim
        ),
      tied: get.("tie_word_embeddings", true, &is_boolean/1),
      attention_bias: get.("attention_bias", false, &is_boolean/1),
      mlp_bias: get.("mlp_bias", false, &is_boolean/1),
      quantization: quantization!(get.("quantization", nil, &(is_nil(&1) or is_map(&1))))
    }
  end

  # mlx-lm's initialize_rope as RoPE options: "default" is plain RoPE, "linear" divides positions
  # by the factor, "llama3" (Llama3RoPE) rescales the periods base^(2i/dims) by wavelength.
  defp rope_opts!(nil, theta, _dims), do: [base: theta]

  defp rope_opts!(s, theta, dims) do
    llama3_keys = ~w(low_freq_factor high_freq_factor original_max_position_embeddings)
    type = s["type"] || s["rope_type"]

    extra =
      Map.keys(s) --
        ["type", "rope_type", "factor" | if(type == "llama3", do: llama3_keys, else: [])]

    f = s["factor"]

    case {type, extra} do
      {"default", []} ->
        [base: theta]

      {"linear", []} when is_number(f) and f > 0 ->
        [base: theta, scale: 1.0 / f]

      {"llama3", []} when is_number(f) and f > 0 ->
        [freqs: llama3_periods(s, f, theta, dims)]

      _ ->
        raise ArgumentError,
              "Mx.NN.Llama.load: rope_scaling #{inspect(s)} is not supported (only \"linear\" or \"llama3\" with a positive factor, or \"default\")"
    end
  end

  # Llama3RoPE: periods beyond old/low_freq_factor are scaled by the factor, those below
  # old/high_freq_factor kept, those between interpolated smoothly (mlx-lm's defaults).
  defp llama3_periods(s, factor, theta, dims) do
    {low, high, old} =
      {Map.get(s, "low_freq_factor", 1.0), Map.get(s, "high_freq_factor", 4.0),
       Map.get(s, "original_max_position_embeddings", 8192)}

    unless is_number(low) and is_number(high) and is_number(old) and 0 < low and low < high and
             old > 0 do
      raise ArgumentError,
            "Mx.NN.Llama.load: rope_scaling #{inspect(s)} needs 0 < low_freq_factor < high_freq_factor and a positive original_max_position_embeddings"
    end

    {low_wavelen, high_wavelen} = {old / low, old / high}

    periods =
      for i <- 0..(div(dims, 2) - 1) do
        period = :math.pow(theta, 2 * i / dims)
        wavelen = 2 * :math.pi() * period

        cond do
          wavelen > low_wavelen ->
            period * factor

          wavelen > high_wavelen and wavelen < low_wavelen ->
            smooth = (old / wavelen - low) / (high - low)
            period / ((1 - smooth) / factor + smooth)

          true ->
            period
        end
      end

    Mx.tensor(periods, type: :f64) |> Mx.eval()
  end

  defp quantization!(nil), do: nil

  defp quantization!(q) do
    case {q["group_size"], q["bits"], Map.get(q, "mode", "affine"),
          Map.keys(q) -- ["group_size", "bits", "mode"]} do
      {gs, bits, "affine", []} when gs in [32, 64, 128] and bits in [2, 4, 8] ->
        %{group_size: gs, bits: bits}

      _ ->
        raise ArgumentError,
              "Mx.NN.Llama.load: quantization #{inspect(q)} is not supported (affine, group_size 32, 64 or 128, bits 2, 4 or 8)"
    end
  end

  @doc false
  # The parameter tree from the checkpoint's tensors, every one checked and every one used.
  def params!(c, weights) do
    weights =
      weights
      |> Map.reject(fn {name, _} -> String.ends_with?(name, "rotary_emb.inv_freq") end)
      |> then(&if(c.tied, do: Map.delete(&1, "lm_head.weight"), else: &1))

    {params, used} =
      {%{}, MapSet.new()}
      |> take_linear(weights, c, :embed, "model.embed_tokens", c.vocab, c.hidden, false)
      |> take_vector(weights, :norm, "model.norm.weight", c.hidden)
      |> then(fn {params, _} = acc ->
        if c.tied,
          do: put_param(acc, :lm_head, params.embed),
          else: take_linear(acc, weights, c, :lm_head, "lm_head", c.vocab, c.hidden, false)
      end)

    {layers, used} =
      Enum.map_reduce(0..(c.layers - 1), used, fn i, used ->
        {layer, layer_used} = layer!(weights, c, "model.layers.#{i}.")
        {layer, MapSet.union(used, layer_used)}
      end)

    case Map.keys(weights) -- MapSet.to_list(used) do
      [] ->
        # Evaluated now, so the converted weights no longer hold the loaded ones.
        params |> Map.put(:layers, layers) |> Mx.eval()

      extra ->
        raise ArgumentError,
              "Mx.NN.Llama.load: the checkpoint has tensors this model does not use: #{inspect(Enum.sort(extra))}"
    end
  end

  defp layer!(w, c, p) do
    {q, kv, h, i} = {c.heads * c.head_dim, c.kv_heads * c.head_dim, c.hidden, c.intermediate}
    ab = c.attention_bias
    mb = c.mlp_bias

    {%{}, MapSet.new()}
    |> take_linear(w, c, :q, p <> "self_attn.q_proj", q, h, ab)
    |> take_linear(w, c, :k, p <> "self_attn.k_proj", kv, h, ab)
    |> take_linear(w, c, :v, p <> "self_attn.v_proj", kv, h, ab)
    |> take_linear(w, c, :o, p <> "self_attn.o_proj", h, q, ab)
    |> take_linear(w, c, :gate, p <> "mlp.gate_proj", i, h, mb)
    |> take_linear(w, c, :up, p <> "mlp.up_proj", i, h, mb)
    |> take_linear(w, c, :down, p <> "mlp.down_proj", h, i, mb)
    |> take_vector(w, :input_norm, p <> "input_layernorm.weight", h)
    |> take_vector(w, :post_norm, p <> "post_attention_layernorm.weight", h)
  end

  defp put_param({params, used}, key, value), do: {Map.put(params, key, value), used}

  # A linear (or embedding) weight {rows, cols}: dense, or quantized when `name.scales` exists.
  defp take_linear({params, used}, w, c, key, name, rows, cols, bias?) do
    layer =
      case {c.quantization, Map.has_key?(w, name <> ".scales")} do
        {%{group_size: gs, bits: bits}, true} ->
          if rem(cols, gs) != 0 do
            raise ArgumentError,
                  "Mx.NN.Llama.load: #{name} is quantized but its #{cols} columns are not a multiple of group_size #{gs}"
          end

          %{
            weight: tensor!(w, name <> ".weight", {rows, div(cols * bits, 32)}, :packed),
            scales: tensor!(w, name <> ".scales", {rows, div(cols, gs)}, :float),
            biases: tensor!(w, name <> ".biases", {rows, div(cols, gs)}, :float)
          }

        _ ->
          %{weight: tensor!(w, name <> ".weight", {rows, cols}, :float)}
      end

    layer =
      if bias?,
        do: Map.put(layer, :bias, tensor!(w, name <> ".bias", {rows}, :float)),
        else: layer

    names = layer |> Map.keys() |> Enum.map(&"#{name}.#{&1}")
    {Map.put(params, key, layer), MapSet.union(used, MapSet.new(names))}
  end

  defp take_vector({params, used}, w, key, name, n),
    do: {Map.put(params, key, tensor!(w, name, {n}, :float)), MapSet.put(used, name)}

  defp tensor!(w, name, shape, kind) do
    case Map.fetch(w, name) do
      :error ->
        raise ArgumentError,
              "Mx.NN.Llama.load: the checkpoint has no tensor #{inspect(name)} (expected shape #{inspect(shape)})"

      {:ok, %{shape: ^shape} = t} ->
        cond do
          kind == :packed and t.type == :u32 ->
            t

          kind == :float and t.type in [:f16, :bf16, :f32, :f64] ->
            Mx.as_type(t, :f32)

          true ->
            raise ArgumentError,
                  "Mx.NN.Llama.load: tensor #{inspect(name)} is #{Mx.describe(t)}; expected #{if kind == :packed, do: "u32 (packed)", else: "a float type"}"
        end

      {:ok, t} ->
        raise ArgumentError,
              "Mx.NN.Llama.load: tensor #{inspect(name)} is #{Mx.describe(t)}; expected shape #{inspect(shape)}"
    end
  end
end
