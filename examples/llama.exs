# A tiny Llama in MLX's format (config.json + model.safetensors, as mlx-lm writes them), loaded
# with Mx.NN.Llama and decoded greedily with a KV cache. The checkpoints are the committed test
# fixtures (random weights, vocabulary of 97 ids, written by test/reference/generate_llama.py), so
# no Python runs here. Usage: mix run examples/llama.exs
prompt = [1, 17, 42, 5, 88, 23, 64, 9, 31]
n = 64

for variant <- ~w(f32 bf16 q4 q8) do
  dir = Path.expand("../test/fixtures/llama_tiny/#{variant}", __DIR__)
  model = Mx.NN.Llama.load(dir)
  c = model.config
  quant = if q = c.quantization, do: ", #{q.bits}-bit groups of #{q.group_size}", else: ""

  IO.puts(
    "#{variant}: #{c.layers} layers, hidden #{c.hidden}, #{c.heads} heads (#{c.kv_heads} for keys/values)#{quant}"
  )

  # One warm-up run, then a timed one; greedy decoding is deterministic, so both give the same ids.
  Mx.NN.Llama.generate(model, prompt, max_tokens: 4)
  t0 = System.monotonic_time(:microsecond)
  tokens = Mx.NN.Llama.generate(model, prompt, max_tokens: n)
  seconds = (System.monotonic_time(:microsecond) - t0) / 1.0e6

  IO.puts("  prompt #{inspect(prompt, charlists: :as_lists)}")

  IO.puts(
    "  greedy #{inspect(Enum.take(tokens, 24), charlists: :as_lists)} ... (#{length(tokens)} tokens)"
  )

  IO.puts(
    "  #{Float.round(n / seconds, 1)} tokens/s (prefill and #{n} decoding steps, load #{File.read!("/proc/loadavg") |> String.split() |> hd()})"
  )
end

mem = Mx.Memory.report()
IO.puts("engine memory: #{mem.live_arrays} live arrays, #{mem.active_bytes} bytes active")
