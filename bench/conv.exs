# Conv2d forward (issue 13's target: >= 1.0x PyTorch): Mx.conv (im2col + OpenBLAS sgemm on engine
# threads) against torch.nn.functional.conv2d (Debian's python3-torch 1.13) in the same run, batches alternating
# (a persistent /usr/bin/python3 process answers torch's batches). f32, padding :same. Then forward and
# backward on issue 13's case: the value and gradients of sum(conv(x, w) * g) w.r.t. x and w.
#
#   mix run bench/conv.exs [calls per batch] [batches] [forward|backward|both]
#
# torch runs with 2 threads (the issue's setting) and with 1: on this shared 2-vCPU VM its OpenMP
# threads spin at barriers, so under load its 2-thread figure can be far slower than 1 thread.
Code.require_file("bench_helper.exs", __DIR__)

{n, batches, which} =
  case System.argv() do
    [n, b, w] when w in ["forward", "backward", "both"] ->
      {String.to_integer(n), String.to_integer(b), w}

    [n, b] ->
      {String.to_integer(n), String.to_integer(b), "both"}

    [] ->
      {10, 9, "both"}

    _ ->
      raise "usage: mix run bench/conv.exs [calls per batch] [batches] [forward|backward|both]"
  end

port =
  Port.open({:spawn_executable, "/usr/bin/python3"}, [
    :binary,
    {:line, 256},
    args: [Path.join(__DIR__, "conv_torch.py")]
  ])

torch_batch = fn {nb, c, h, w, o, k}, threads, reps, mode ->
  Port.command(port, Enum.join([nb, c, h, w, o, k, threads, reps, mode], " ") <> "\n")

  receive do
    {^port, {:data, {:eol, line}}} ->
      line |> String.split() |> Enum.map(&String.to_float/1) |> List.to_tuple()
  after
    120_000 -> raise "torch did not answer"
  end
end

# One table: Mx against torch (2 and 1 threads), batches alternating; mode 0 forward, 1 forward + backward.
table = fn title, shapes, mx_fun, mode ->
  IO.puts(
    "\n#{title}, f32, padding :same; ms per call, median of #{batches} batches x #{n} calls (Mx, torch 2 threads, torch 1 thread alternating); " <>
      "CPU: ms of CPU time per call, all of the process's threads (Mx: BEAM, engine and OpenBLAS threads; torch(1): its process)"
  )

  IO.puts(
    "| N C H W -> O, k | Mx ms | torch(2) ms | torch(2) / Mx | torch(1) ms | torch(1) / Mx | Mx CPU | torch(1) CPU | load (1 min) |"
  )

  IO.puts("|---|---:|---:|---:|---:|---:|---:|---:|---:|")

  for {nb, c, h, w, o, k} = s <- shapes do
    x = Mx.Random.normal(Mx.Random.key(1), shape: {nb, c, h, w}) |> Mx.eval()
    kern = Mx.Random.normal(Mx.Random.key(2), shape: {o, c, k, k}) |> Mx.eval()
    g = Mx.Random.normal(Mx.Random.key(3), shape: {nb, o, h, w}) |> Mx.eval()
    mx_call = mx_fun.(x, kern, g)
    Bench.batch_ns(mx_call, 2)
    torch_batch.(s, 2, 2, mode)
    torch_batch.(s, 1, 2, mode)

    {mx, t2, t1, loads} =
      Enum.reduce(1..batches, {[], [], [], []}, fn _, {m, a, b, l} ->
        :erlang.garbage_collect()
        cpu0 = Bench.process_cpu_ns()
        wall = Bench.batch_ns(mx_call, n)
        m = [{wall, (Bench.process_cpu_ns() - cpu0) / n} | m]

        {m, [torch_batch.(s, 2, n, mode) | a], [torch_batch.(s, 1, n, mode) | b],
         [String.to_float(Bench.load()) | l]}
      end)

    med = fn list, i -> Bench.median(Enum.map(list, &elem(&1, i))) / 1.0e6 end
    [mm, a, b, mc, bc] = [med.(mx, 0), med.(t2, 0), med.(t1, 0), med.(mx, 1), med.(t1, 1)]
    f = &:erlang.float_to_binary(&1, decimals: 2)

    IO.puts(
      "| #{nb} #{c} #{h} #{w} -> #{o}, #{k} | #{f.(mm)} | #{f.(a)} | #{f.(a / mm)} | #{f.(b)} | #{f.(b / mm)} | #{f.(mc)} | #{f.(bc)} | #{f.(Enum.min(loads))}-#{f.(Enum.max(loads))} |"
    )
  end
end

if which in ["forward", "both"] do
  shapes = [
    {8, 64, 32, 32, 64, 3},
    {8, 3, 32, 32, 64, 3},
    {8, 64, 32, 32, 64, 1},
    {1, 128, 56, 56, 128, 3}
  ]

  table.(
    "conv2d forward",
    shapes,
    fn x, kern, _g -> fn -> Mx.conv(x, kern, padding: :same) |> Mx.eval() end end,
    0
  )
end

if which in ["backward", "both"] do
  vg =
    Mx.value_and_grad(
      fn x, kern, g -> Mx.sum(Mx.multiply(Mx.conv(x, kern, padding: :same), g)) end,
      [0, 1]
    )

  mx_fun = fn x, kern, g ->
    fn ->
      {v, grads} = vg.(x, kern, g)
      Mx.eval([v | grads])
    end
  end

  table.(
    "conv2d forward + backward (value and gradients w.r.t. x and w of sum(conv(x, w) * g))",
    [{8, 64, 32, 32, 64, 3}],
    mx_fun,
    1
  )
end

Port.close(port)
