defmodule Mx.NN.TrainingTest do
  # Not async: the memory check counts the engine's live arrays, which other tests would move.
  use ExUnit.Case, async: false

  alias Mx.NN

  @layers [
    {NN.Linear, input_dims: 2, output_dims: 32},
    :tanh,
    {NN.Linear, input_dims: 32, output_dims: 32},
    :tanh,
    {NN.Linear, input_dims: 32, output_dims: 1}
  ]

  @tag :slow
  test "an MLP learns y = sin(3 x1) x2 by plain gradient descent; memory flat over 10^4 steps" do
    [kd, kp] = NN.split_keys(Mx.Random.key(42), 2)
    x = Mx.Random.uniform(kd, -1.0, 1.0, shape: {256, 2})
    y = Mx.multiply(Mx.sin(Mx.multiply(x[[.., 0..0]], 3.0)), x[[.., 1..1]])
    loss = fn p -> NN.Losses.mse_loss(NN.Sequential.apply(p, x, layers: @layers), y) end
    step = Mx.value_and_grad(loss)
    lr = 0.2

    train = fn p, steps ->
      Enum.reduce(1..steps, {p, nil}, fn _, {p, _} ->
        {l, g} = step.(p)
        p = Mx.Tree.zip_with([p, g], fn [w, dw] -> Mx.subtract(w, Mx.multiply(dw, lr)) end)
        {Mx.eval(p), l}
      end)
    end

    p0 = NN.Sequential.init(kp, layers: @layers)
    initial = loss.(p0) |> Mx.to_number()
    {p, l} = train.(p0, 1000)

    # The best linear fit explains almost nothing (y is odd in x1 times x2).
    xa = Mx.concatenate([x, Mx.ones({256, 1})], axis: 1)
    w = Mx.Linalg.solve(Mx.matmul(Mx.transpose(xa), xa), Mx.matmul(Mx.transpose(xa), y))
    linear = NN.Losses.mse_loss(Mx.matmul(xa, w), y) |> Mx.to_number()

    final = Mx.to_number(l)

    assert final < 0.01,
           "MSE after 1000 steps: #{final} (initial #{initial}, best linear fit #{linear})"

    assert final < 0.1 * linear

    # Up to 10^4 steps: after 2000 more (the allocator's buffer pattern settles), 7000 steps must not
    # grow memory. The bounds leave room for other processes' arrays being freed or made meanwhile
    # but catch any per-step leak: one array per 7 steps (1000), or 150 bytes per step (1 MB).
    {p, _} = train.(p, 2000)
    :erlang.garbage_collect()
    {live, bytes} = {Mx.Memory.live_arrays(), Mx.Memory.active_bytes()}
    {_p, _} = train.(p, 7000)
    :erlang.garbage_collect()
    {live2, bytes2} = {Mx.Memory.live_arrays(), Mx.Memory.active_bytes()}
    assert live2 - live < 1000, "live arrays #{live} -> #{live2}"
    assert bytes2 - bytes < 1_048_576, "active bytes #{bytes} -> #{bytes2}"
  end
end
