# Llama forward tokens/s: Mx.NN.Llama vs PyTorch 1.13 CPU (bench/llama_torch.py) on the same
# random f32 checkpoint, written here in MLX's format; rounds alternate Mx and torch in one run.
# Prefill: one forward over a 128-token prompt (logits at every position). Decode: 64 steps of one
# token each with the KV cache after that prompt (the argmax fed back). Also Mx on the same
# weights quantized to 4 bits (groups of 64), which torch has no counterpart for here. Torch runs
# twice a round: with its default threads and with one (the shared machine punishes oversubscription).
# Usage: mix run bench/llama.exs [ROUNDS]
Code.require_file("bench_helper.exs", __DIR__)
alias Mx.NN.Llama

defmodule LlamaBench do
  @cfg %{
    hidden: 256,
    layers: 4,
    heads: 8,
    kv_heads: 4,
    intermediate: 704,
    vocab: 1024
  }

  def config, do: @cfg

  # Random weights (std 1/sqrt(fan-in)) under mlx-lm's names, f32 or quantized, with config.json.
  def write(dir, quantize?) do
    File.mkdir_p!(dir)
    c = @cfg
    hd = div(c.hidden, c.heads)
    keys = Mx.Random.split(Mx.Random.key(42), 64)
    counter = :counters.new(1, [])

    rand = fn shape, std ->
      :counters.add(counter, 1, 1)
      Mx.Random.normal(keys[:counters.get(counter, 1)], 0.0, std, shape: shape)
    end

    lin = fn o, i -> rand.({o, i}, 1 / :math.sqrt(i)) end

    dense =
      for l <- 0..(c.layers - 1),
          {name, t} <- [
            {"self_attn.q_proj", lin.(c.heads * hd, c.hidden)},
            {"self_attn.k_proj", lin.(c.kv_heads * hd, c.hidden)},
            {"self_attn.v_proj", lin.(c.kv_heads * hd, c.hidden)},
            {"self_attn.o_proj", lin.(c.hidden, c.heads * hd)},
            {"mlp.gate_proj", lin.(c.intermediate, c.hidden)},
            {"mlp.up_proj", lin.(c.intermediate, c.hidden)},
            {"mlp.down_proj", lin.(c.hidden, c.intermediate)}
          ],
          into: %{},
          do: {"model.layers.#{l}.#{name}", t}

    dense =
      Map.merge(dense, %{
        "model.embed_tokens" => rand.({c.vocab, c.hidden}, 0.25),
        "lm_head" => lin.(c.vocab, c.hidden)
      })

    weights =
      Enum.flat_map(dense, fn {name, w} ->
        if quantize? do
          {q, s, b} = Mx.quantize(w, group_size: 64, bits: 4)
          [{name <> ".weight", q}, {name <> ".scales", s}, {name <> ".biases", b}]
        else
          [{name <> ".weight", w}]
        end
      end)

    norms =
      for l <- 0..(c.layers - 1), n <- ["input_layernorm", "post_attention_layernorm"] do
        {"model.layers.#{l}.#{n}.weight", Mx.ones({c.hidden})}
      end

    tensors = Map.new(weights ++ norms ++ [{"model.norm.weight", Mx.ones({c.hidden})}])
    :ok = Mx.IO.save_safetensors(Path.join(dir, "model.safetensors"), tensors)
    quant = if quantize?, do: ~s(,\n  "quantization": {"group_size": 64, "bits": 4}), else: ""

    File.write!(Path.join(dir, "config.json"), """
    {
      "model_type": "llama", "hidden_size": #{c.hidden}, "num_hidden_layers": #{c.layers},
      "intermediate_size": #{c.intermediate}, "num_attention_heads": #{c.heads},
      "num_key_value_heads": #{c.kv_heads}, "rms_norm_eps": 1e-5, "vocab_size": #{c.vocab},
      "rope_theta": 10000.0, "tie_word_embeddings": false#{quant}
    }
    """)

    dir
  end

  # Tokens/s of the prefill and of the decoding steps (one round), and the greedy ids.
  def run(model, prompt, steps) do
    t0 = Bench.now_ns()
    {logits, cache} = Llama.forward(model, prompt)
    tok = logits |> Mx.argmax(axis: -1) |> Mx.to_flat_list() |> List.last()
    t1 = Bench.now_ns()

    {ids, _, _} =
      Enum.reduce(1..steps, {[], tok, cache}, fn _, {ids, tok, cache} ->
        {logits, cache} = Llama.forward(model, [tok], cache)
        {[tok | ids], logits |> Mx.argmax(axis: -1) |> Mx.to_flat_list() |> hd(), cache}
      end)

    t2 = Bench.now_ns()
    {length(prompt) / ((t1 - t0) / 1.0e9), steps / ((t2 - t1) / 1.0e9), Enum.reverse(ids)}
  end
end

rounds = System.argv() |> List.first("3") |> String.to_integer()
{plen, steps, reps} = {128, 64, 3}
tmp = Path.join(System.tmp_dir!(), "mx_llama_bench_#{System.os_time()}")
f32_dir = LlamaBench.write(Path.join(tmp, "f32"), false)
q4_dir = LlamaBench.write(Path.join(tmp, "q4"), true)
model = Llama.load(f32_dir)
q4 = Llama.load(q4_dir)
c = LlamaBench.config()
prompt = for i <- 0..(plen - 1), do: rem(7 * i + 1, c.vocab)

IO.puts(
  "Llama #{inspect(c)}; prompt #{plen} tokens, #{steps} decoding steps; torch threads as default"
)

# Warm-up, and the same greedy ids on both sides as a check that they run the same model.
{_, _, ids} = LlamaBench.run(model, prompt, steps)

rows =
  for round <- 1..rounds do
    mx = for _ <- 1..reps, do: LlamaBench.run(model, prompt, steps)
    mq = for _ <- 1..reps, do: LlamaBench.run(q4, prompt, steps)

    torch = fn threads ->
      {out, 0} =
        System.cmd(
          "/usr/bin/python3",
          [Path.join(__DIR__, "llama_torch.py"), f32_dir, "#{plen}", "#{steps}", "#{reps}"] ++
            threads
        )

      [times, torch_ids] = String.split(out, "\n", trim: true)

      if Enum.map(String.split(torch_ids), &String.to_integer/1) != ids,
        do: IO.puts("note: torch's greedy ids differ from Mx's (near-ties in f32)")

      times |> String.split() |> Enum.map(&String.to_float/1)
    end

    [tp, td] = torch.([])
    [tp1, td1] = torch.(["1"])

    med = fn rs, i -> Bench.median(Enum.map(rs, &elem(&1, i))) end
    {mp, md, qp, qd} = {med.(mx, 0), med.(mx, 1), med.(mq, 0), med.(mq, 1)}

    IO.puts(
      "round #{round}: prefill Mx #{Bench.fmt(mp)} torch #{Bench.fmt(tp)} tok/s (Mx/torch #{Float.round(mp / tp, 2)}); " <>
        "decode Mx #{Bench.fmt(md)} torch #{Bench.fmt(td)} tok/s (Mx/torch #{Float.round(md / td, 2)}); " <>
        "torch 1 thread #{Bench.fmt(tp1)} / #{Bench.fmt(td1)}; " <>
        "q4 prefill #{Bench.fmt(qp)} decode #{Bench.fmt(qd)} (load #{Bench.load()})"
    )

    {mp, md, tp, td, qp, qd, tp1, td1}
  end

[mp, md, tp, td, qp, qd, tp1, td1] = for i <- 0..7, do: Bench.median(Enum.map(rows, &elem(&1, i)))
# Each round's ratio pairs figures taken back to back, under the same load.
ratio = fn i, j ->
  Bench.median(Enum.map(rows, &(elem(&1, i) / elem(&1, j)))) |> Float.round(2)
end

IO.puts(
  "medians: prefill Mx #{Bench.fmt(mp)} / torch #{Bench.fmt(tp)} tok/s = #{Float.round(mp / tp, 2)}; " <>
    "decode Mx #{Bench.fmt(md)} / torch #{Bench.fmt(td)} tok/s = #{Float.round(md / td, 2)}; " <>
    "Mx q4: prefill #{Bench.fmt(qp)}, decode #{Bench.fmt(qd)} tok/s; " <>
    "median of the rounds' Mx/torch: prefill #{ratio.(0, 2)}, decode #{ratio.(1, 3)}; " <>
    "torch 1 thread: prefill #{Bench.fmt(tp1)}, decode #{Bench.fmt(td1)} tok/s, Mx/torch #{ratio.(0, 6)} and #{ratio.(1, 7)}"
)

File.rm_rf!(tmp)
