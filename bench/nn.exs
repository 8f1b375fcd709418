# MLP training step (forward + backward + plain SGD update) on Mx.NN vs PyTorch 1.13 CPU (bench/nn_torch.py),
# alternating in one run. Usage: mix run bench/nn.exs
# Sizes: small = batch 64, 32-64-64-1, MSE; large = batch 256, 784-512-512-10, cross-entropy.
# Mx is timed uncompiled (graph built each step) and under Mx.compile (the whole step as one tape).
Code.require_file("bench_helper.exs", __DIR__)
alias Mx.NN

defmodule NNBench do
  def setup(size) do
    {dims, batch, classes} =
      if size == "small", do: {[32, 64, 64, 1], 64, nil}, else: {[784, 512, 512, 10], 256, 10}

    pairs = Enum.zip(Enum.drop(dims, -1), Enum.drop(dims, 1))

    layers =
      pairs
      |> Enum.map(fn {i, o} -> {NN.Linear, input_dims: i, output_dims: o} end)
      |> Enum.intersperse(:relu)

    [kp, kx, ky] = NN.split_keys(Mx.Random.key(0), 3)
    params = NN.Sequential.init(kp, layers: layers)
    x = Mx.Random.normal(kx, shape: {batch, hd(dims)})

    y =
      if classes,
        do: Mx.Random.randint(ky, 0, classes, shape: {batch}),
        else: Mx.Random.normal(ky, shape: {batch, 1})

    loss = fn p, x, y ->
      out = NN.Sequential.apply(p, x, layers: layers)

      if classes,
        do: NN.Losses.cross_entropy(out, y, reduction: :mean),
        else: NN.Losses.mse_loss(out, y)
    end

    step = fn p, x, y ->
      {l, g} = Mx.value_and_grad(loss).(p, x, y)
      {Mx.Tree.zip_with([p, g], fn [w, dw] -> Mx.subtract(w, Mx.multiply(dw, 0.01)) end), l}
    end

    {params, x, y, step, Mx.compile(step)}
  end

  def time_us(step, params, x, y, reps) do
    run = fn p -> step.(p, x, y) |> Mx.eval() |> elem(0) end
    p = Enum.reduce(1..max(div(reps, 10), 3), params, fn _, p -> run.(p) end)

    {times, _} =
      Enum.map_reduce(1..reps, p, fn _, p ->
        t0 = Bench.now_ns()
        p = run.(p)
        {(Bench.now_ns() - t0) / 1000, p}
      end)

    Bench.median(times)
  end
end

reps = %{"small" => 200, "large" => 20}

rows =
  for round <- 1..3, size <- ["small", "large"] do
    {params, x, y, step, compiled} = NNBench.setup(size)
    mx = NNBench.time_us(step, params, x, y, reps[size])
    mxc = NNBench.time_us(compiled, params, x, y, reps[size])

    {out, 0} =
      System.cmd("/usr/bin/python3", [Path.join(__DIR__, "nn_torch.py"), size, "#{reps[size]}"])

    torch = out |> String.trim() |> String.to_float()
    {load, 0} = System.cmd("cat", ["/proc/loadavg"])

    IO.puts(
      "round #{round} #{size}: Mx #{Float.round(mx, 1)} us, Mx.compile #{Float.round(mxc, 1)} us, torch #{torch} us (load #{load |> String.split() |> hd()})"
    )

    {size, mx, mxc, torch}
  end

for size <- ["small", "large"] do
  rs = Enum.filter(rows, &(elem(&1, 0) == size))
  [mx, mxc, torch] = for i <- 1..3, do: Bench.median(Enum.map(rs, &elem(&1, i)))

  IO.puts(
    "#{size}: medians Mx #{Float.round(mx, 1)} us, Mx.compile #{Float.round(mxc, 1)} us, torch #{Float.round(torch, 1)} us; torch/Mx #{Float.round(torch / mx, 2)}, torch/compiled #{Float.round(torch / mxc, 2)}"
  )
end
