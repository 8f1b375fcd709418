defmodule Mx.NN.LlamaTest do
  # Tiny Llama checkpoints in MLX's format against a float64 torch forward written by hand
  # (test/reference/generate_llama.py writes test/fixtures/llama_tiny/<variant>/).
  use ExUnit.Case, async: false

  alias Mx.NN.Llama

  doctest Mx.NN.Llama

  @fixtures Path.expand("../../fixtures/llama_tiny", __DIR__)
  @variants ~w(f32 bf16 f16 q4 q8 llama3)

  # The reference is float64 from the same stored (or dequantized) weights, so the gap is our
  # f32 rounding: about depth · γ(K) · magnitude, with K = 64 the longest inner product, depth
  # ≈ 20 rounding stages in sequence (2 layers of norm, projections, softmax, MLP, residuals),
  # γ(64) ≈ 3.8e-6 and activations and logits of order 1 (|logit| ≤ 5 here): 20 · 3.8e-6 ≈ 7.6e-5,
  # rounded up to 1e-4 per unit of the largest logit.
  defp tolerance(expected), do: 1.0e-4 * max(1.0, max_abs(expected))

  defp max_abs(a), do: a |> Mx.abs() |> Mx.reduce_max() |> Mx.to_number()

  defp max_diff(a, b), do: max_abs(Mx.subtract(Mx.as_type(a, :f64), Mx.as_type(b, :f64)))

  defp fixture(v) do
    dir = Path.join(@fixtures, v)
    {Llama.load(dir), Mx.IO.load(Path.join(dir, "expected.safetensors"))}
  end

  for v <- @variants do
    @v v

    test "#{v}: full-prompt logits match torch" do
      {model, e} = fixture(@v)
      {logits, cache} = Llama.forward(model, Mx.to_list(e["prompt"]))
      assert Mx.shape(logits) == Mx.shape(e["logits"])
      assert max_diff(logits, e["logits"]) <= tolerance(e["logits"])
      assert cache.offset == elem(Mx.shape(e["prompt"]), 0)
    end

    test "#{v}: decoding in chunks with the KV cache gives the full forward's logits" do
      {model, e} = fixture(@v)
      prompt = Mx.to_list(e["prompt"])
      {full, _} = Llama.forward(model, prompt)

      {steps, _, cache} =
        Enum.reduce(Mx.to_list(e["chunks"]), {[], prompt, nil}, fn n, {acc, rest, cache} ->
          {chunk, rest} = Enum.split(rest, n)
          {logits, cache} = Llama.forward(model, chunk, cache)
          {[logits | acc], rest, cache}
        end)

      incremental = steps |> Enum.reverse() |> Mx.concatenate(axis: 0)
      assert cache.offset == length(prompt)
      assert max_diff(incremental, e["incremental_logits"]) <= tolerance(e["incremental_logits"])
      assert max_diff(incremental, full) <= tolerance(e["logits"])
    end

    test "#{v}: greedy generation gives torch's tokens" do
      {model, e} = fixture(@v)
      expected = Mx.to_list(e["greedy"])

      assert Llama.generate(model, Mx.to_list(e["prompt"]), max_tokens: length(expected)) ==
               expected
    end
  end

  test "a batch of two prompts gives each prompt's logits" do
    {model, e} = fixture("f32")
    prompt = Mx.to_list(e["prompt"])
    other = Enum.reverse(prompt)
    {logits, cache} = Llama.forward(model, Mx.tensor([prompt, other]))
    {alone, _} = Llama.forward(model, other)
    assert Mx.shape(logits) == {2, length(prompt), 97}
    assert max_diff(logits[0], e["logits"]) <= tolerance(e["logits"])
    assert max_diff(logits[1], alone) <= tolerance(alone)

    assert_raise ArgumentError, ~r/do not match the cache's batch of 2/, fn ->
      Llama.forward(model, [1], cache)
    end
  end

  describe "Llama 3 RoPE scaling" do
    test "without it the llama3 fixture's logits are far off (the fixture tests the scaling)" do
      dir = Path.join(System.tmp_dir!(), "mx_llama3_test_#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)
      src = Path.join(@fixtures, "llama3")
      File.cp!(Path.join(src, "model.safetensors"), Path.join(dir, "model.safetensors"))
      config = File.read!(Path.join(src, "config.json"))
      plain_config = String.replace(config, ~r/\n  "rope_scaling": \{[^}]*\},/, "")
      assert plain_config != config
      File.write!(Path.join(dir, "config.json"), plain_config)
      e = Mx.IO.load(Path.join(src, "expected.safetensors"))
      {plain, _} = Llama.forward(Llama.load(dir), Mx.to_list(e["prompt"]))
      File.rm_rf!(dir)
      assert max_diff(plain, e["logits"]) > 100 * tolerance(e["logits"])
    end

    test "mlx-lm's defaults: a bare factor means low 1, high 4, original context 8192" do
      {:ok, json} =
        @fixtures |> Path.join("f32/config.json") |> File.read!() |> Mx.IO.JSON.decode()

      bare = Map.put(json, "rope_scaling", %{"rope_type" => "llama3", "factor" => 8.0})

      full =
        Map.put(json, "rope_scaling", %{
          "type" => "llama3",
          "factor" => 8.0,
          "low_freq_factor" => 1.0,
          "high_freq_factor" => 4.0,
          "original_max_position_embeddings" => 8192
        })

      [freqs: a] = Llama.config!(bare).rope
      [freqs: b] = Llama.config!(full).rope
      assert Mx.to_list(a) == Mx.to_list(b)
      # head_dim 8, base 10000: periods 10000^(i/4) have wavelengths 6.3, 63, 628 and 6283, all
      # below 8192 / 4 = 2048 but the last, which lies between 2048 and 8192: interpolated.
      [p0, p1, p2, p3] = Mx.to_list(a)
      assert {p0, p1, p2} == {1.0, :math.pow(10_000, 0.25), :math.pow(10_000, 0.5)}
      smooth = (8192 / (2 * :math.pi() * 1000) - 1) / 3
      assert_in_delta p3, 1000 / ((1 - smooth) / 8 + smooth), 1.0e-9
    end

    test "RoPE's freqs: the base's own periods give the base's result; bad freqs raise" do
      x = Mx.Random.normal(Mx.Random.key(3), shape: {1, 2, 5, 8}, type: :f64)
      periods = Mx.tensor(for(i <- 0..3, do: :math.pow(500.0, 2 * i / 8)), type: :f64)
      by_base = Mx.NN.RoPE.apply(%{}, x, dims: 8, base: 500.0, offset: 3)
      by_freqs = Mx.NN.RoPE.apply(%{}, x, dims: 8, freqs: periods, offset: 3)
      assert max_diff(by_base, by_freqs) <= 1.0e-14

      assert_raise ArgumentError, ~r/give base: or freqs:, not both/, fn ->
        Mx.NN.RoPE.apply(%{}, x, dims: 8, base: 500.0, freqs: periods)
      end

      assert_raise ArgumentError,
                   ~r/freqs: must be a float array of shape \{4\}.*got f64\[3\]/,
                   fn ->
                     Mx.NN.RoPE.apply(%{}, x,
                       dims: 8,
                       freqs: Mx.tensor([1.0, 2.0, 3.0], type: :f64)
                     )
                   end

      assert_raise ArgumentError, ~r/freqs: must be a float array/, fn ->
        Mx.NN.RoPE.apply(%{}, x, dims: 8, freqs: [1.0, 2.0, 3.0, 4.0])
      end
    end
  end

  test "the loaded model computes in f32 and keeps quantized weights packed" do
    {f16, _} = fixture("f16")
    assert f16.params.embed.weight.type == :f32
    {q4, _} = fixture("q4")
    # Tied: the output layer is the quantized embedding itself, not a copy.
    assert q4.params.lm_head == q4.params.embed

    assert %{weight: %{type: :u32, shape: {32, 4}}, scales: %{type: :f32}} =
             hd(q4.params.layers).q
  end

  describe "malformed checkpoints raise" do
    setup do
      dir = Path.join(System.tmp_dir!(), "mx_llama_test_#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)
      src = Path.join(@fixtures, "f32")
      File.cp!(Path.join(src, "model.safetensors"), Path.join(dir, "model.safetensors"))
      on_exit(fn -> File.rm_rf!(dir) end)

      %{
        dir: dir,
        config: File.read!(Path.join(src, "config.json")),
        weights: Mx.IO.load(Path.join(src, "model.safetensors"))
      }
    end

    defp with_config(dir, text) do
      File.write!(Path.join(dir, "config.json"), text)
      dir
    end

    defp edit(config, from, to) do
      assert config =~ from
      String.replace(config, from, to)
    end

    test "config problems name the key", %{dir: dir, config: config} do
      cases = [
        {edit(config, ~s("hidden_act": "silu"), ~s("hidden_act": "gelu")),
         ~r/hidden_act is "gelu", which is not supported/},
        {edit(config, ~s("model_type": "llama"), ~s("model_type": "gpt2")),
         ~r/model_type is "gpt2"/},
        {edit(config, ~s("num_key_value_heads": 2), ~s("num_key_value_heads": 3)),
         ~r/num_key_value_heads is 3/},
        {edit(config, ~s("hidden_size": 32), ~s("hidden_size": 32.5)), ~r/hidden_size is 32.5/},
        {edit(config, ~s(,\n  "vocab_size": 97), ""), ~r/vocab_size is nil/},
        {edit(
           config,
           ~s("rope_theta"),
           ~s("rope_scaling": {"type": "yarn", "factor": 8.0},\n  "rope_theta")
         ), ~r/rope_scaling .* is not supported \(only "linear" or "llama3"/},
        {edit(
           config,
           ~s("rope_theta"),
           ~s("rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0},\n  "rope_theta")
         ), ~r/needs 0 < low_freq_factor < high_freq_factor/},
        {edit(
           config,
           ~s("rope_theta"),
           ~s("rope_scaling": {"rope_type": "llama3", "factor": 8.0, "beta_fast": 32},\n  "rope_theta")
         ), ~r/rope_scaling .* is not supported/},
        {edit(config, ~s("rope_theta"), ~s("sliding_window": 4096,\n  "rope_theta")),
         ~r/sliding_window is 4096/},
        {edit(
           config,
           ~s("rope_theta"),
           ~s("quantization": {"group_size": 64, "bits": 3},\n  "rope_theta")
         ), ~r/quantization .* is not supported/},
        {edit(config, ~s("rope_theta"), ~s("rope_type_x": 1,\n  "rope_theta")),
         ~r/keys this loader does not know, which may change the model's math: \["rope_type_x"\]/},
        {edit(
           config,
           ~s("rope_theta"),
           ~s("quantization_config": {"bits": 4, "quant_method": "gptq"},\n  "rope_theta")
         ), ~r/quantization_config but no quantization/},
        {"{\"hidden_size\": ", ~r/config.json is not valid JSON/},
        {"[1]", ~r/must hold a JSON object/}
      ]

      for {text, message} <- cases do
        assert_raise ArgumentError, message, fn -> Llama.load(with_config(dir, text)) end
      end

      extra = edit(config, ~s("rope_theta"), ~s("my_note": 1,\n  "rope_theta"))
      assert %Llama{} = Llama.load(with_config(dir, extra), ignore_keys: ["my_note"])
      File.rm!(Path.join(dir, "config.json"))
      assert_raise ArgumentError, ~r/cannot read .*config.json/, fn -> Llama.load(dir) end
    end

    test "tensor problems name the tensor and the expected shape", %{
      dir: dir,
      config: config,
      weights: w
    } do
      with_config(dir, config)
      path = Path.join(dir, "model.safetensors")
      up = "model.layers.1.mlp.up_proj.weight"

      cases = [
        {Map.delete(w, up),
         ~r/no tensor "model.layers.1.mlp.up_proj.weight" \(expected shape \{64, 32\}\)/},
        {Map.put(w, up, Mx.zeros({32, 64})),
         ~r/tensor "model.layers.1.mlp.up_proj.weight" is f32\[32\]\[64\]; expected shape \{64, 32\}/},
        {Map.put(w, "model.norm.weight", Mx.zeros({32}, type: :s32)),
         ~r/"model.norm.weight" is s32\[32\]; expected a float type/},
        {Map.put(w, "model.layers.2.mlp.up_proj.weight", Mx.zeros({64, 32})),
         ~r/tensors this model does not use: \["model.layers.2.mlp.up_proj.weight"\]/}
      ]

      for {weights, message} <- cases do
        :ok = Mx.IO.save_safetensors(path, weights)
        assert_raise ArgumentError, message, fn -> Llama.load(dir) end
      end

      File.rm!(path)
      assert_raise ArgumentError, ~r/no model\*.safetensors file/, fn -> Llama.load(dir) end
    end

    test "shards load together; a tensor in two shards raises", %{
      dir: dir,
      config: config,
      weights: w
    } do
      with_config(dir, config)
      File.rm!(Path.join(dir, "model.safetensors"))
      {first, second} = w |> Enum.sort() |> Enum.split(10)
      shard = &Path.join(dir, "model-0000#{&1}-of-00002.safetensors")
      :ok = Mx.IO.save_safetensors(shard.(1), Map.new(first))
      :ok = Mx.IO.save_safetensors(shard.(2), Map.new(second))
      {logits, _} = Llama.forward(Llama.load(dir), [1, 2, 3])
      {expected, _} = Llama.forward(Llama.load(Path.join(@fixtures, "f32")), [1, 2, 3])
      assert max_diff(logits, expected) == 0.0

      :ok = Mx.IO.save_safetensors(shard.(2), Map.new([hd(first) | second]))

      assert_raise ArgumentError,
                   ~r/tensor #{inspect(elem(hd(first), 0))} is in more than one file/,
                   fn -> Llama.load(dir) end
    end

    test "as mlx-lm, a tied model drops lm_head.weight and rotary_emb.inv_freq", %{
      dir: dir,
      config: config,
      weights: w
    } do
      with_config(
        dir,
        edit(config, ~s("tie_word_embeddings": false), ~s("tie_word_embeddings": true))
      )

      extra = %{"model.layers.0.self_attn.rotary_emb.inv_freq" => Mx.ones({4})}
      :ok = Mx.IO.save_safetensors(Path.join(dir, "model.safetensors"), Map.merge(w, extra))
      model = Llama.load(dir)
      # The output layer is now the embedding, the same {vocab, hidden} array (held once).
      assert model.params.lm_head == model.params.embed
      assert Mx.to_list(model.params.lm_head.weight) == Mx.to_list(w["model.embed_tokens.weight"])
    end

    test "a quantized layer's packed weight must be u32 of the packed shape", %{dir: dir} do
      src = Path.join(@fixtures, "q4")
      with_config(dir, File.read!(Path.join(src, "config.json")))
      w = Mx.IO.load(Path.join(src, "model.safetensors"))
      name = "model.layers.0.self_attn.k_proj.weight"

      :ok =
        Mx.IO.save_safetensors(
          Path.join(dir, "model.safetensors"),
          Map.put(w, name, Mx.as_type(w[name], :s32))
        )

      assert_raise ArgumentError, ~r/"#{name}" is s32\[16\]\[4\]; expected u32 \(packed\)/, fn ->
        Llama.load(dir)
      end
    end
  end

  test "bad tokens and options raise" do
    {model, _} = fixture("f32")

    assert_raise ArgumentError, ~r/token ids must be in 0..96/, fn ->
      Llama.forward(model, [1, 97])
    end

    assert_raise ArgumentError, ~r/token ids must be in 0..96/, fn ->
      Llama.forward(model, [-1])
    end

    assert_raise ArgumentError, ~r/tokens must be integers/, fn ->
      Llama.forward(model, Mx.tensor([1.0]))
    end

    assert_raise ArgumentError, ~r/non-empty list of integer ids/, fn ->
      Llama.forward(model, [])
    end

    assert_raise ArgumentError, ~r/max_tokens: is required/, fn ->
      Llama.generate(model, [1], [])
    end

    assert_raise ArgumentError, ~r/prompt must be a non-empty list/, fn ->
      Llama.generate(model, [], max_tokens: 2)
    end

    assert_raise ArgumentError, ~r/stop_tokens: must be a list of token ids/, fn ->
      Llama.generate(model, [1], max_tokens: 2, stop_tokens: 5)
    end

    assert_raise ArgumentError, ~r/unknown option/i, fn ->
      Llama.generate(model, [1], max_tokens: 2, temperature: 1.0)
    end
  end

  test "memory stays flat over 300 decoding steps: it holds the weights and the cache, nothing more" do
    {model, e} = fixture("f32")
    prompt = Mx.to_list(e["prompt"])
    c = model.config
    base = Mx.MemoryCheck.settled(Mx.Memory.report())

    step = fn {token, cache} ->
      {logits, cache} = Llama.forward(model, [token], cache)
      {logits |> Mx.argmax(axis: -1) |> Mx.to_flat_list() |> List.last(), cache}
    end

    kv_bytes_per_token = c.layers * 2 * c.kv_heads * c.head_dim * 4
    # The cache's growth over 280 steps, doubled for the allocator's size classes.
    growth = 2 * 280 * kv_bytes_per_token

    # In a task of its own, so the cache is garbage once it returns. Destructors run shortly
    # after a GC, so each reading waits for the engine to settle (Mx.MemoryCheck).
    {offset, at20, at300} =
      Task.async(fn ->
        state = Enum.reduce(1..20, step.({hd(prompt), nil}), fn _, state -> step.(state) end)
        at20 = Mx.MemoryCheck.settled(%{base | live_arrays: 0, active_bytes: 0}, 8)
        state = Enum.reduce(21..300, state, fn _, state -> step.(state) end)
        limit = %{at20 | active_bytes: at20.active_bytes + growth}
        at300 = Mx.MemoryCheck.settled(limit)
        # The cache is used after the reading, so it is live (and counted) there.
        {elem(state, 1).offset, at20, at300}
      end)
      |> Task.await(:infinity)

    # No more live arrays at step 300 than at step 20, and the bytes grew by the cache alone.
    assert at300.live_arrays <= at20.live_arrays
    assert at300.active_bytes <= at20.active_bytes + growth
    assert offset == 301

    # generate/3 leaves nothing behind.
    assert length(Llama.generate(model, prompt, max_tokens: 300)) == 300
    after_run = Mx.MemoryCheck.settled(base)
    assert after_run.live_arrays <= base.live_arrays
    assert after_run.active_bytes <= base.active_bytes
  end
end
