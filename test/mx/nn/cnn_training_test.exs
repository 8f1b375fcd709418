defmodule Mx.NN.CNNTrainingTest do
  # A small CNN trained by plain gradient descent on generated images.
  use ExUnit.Case, async: true

  alias Mx.NN

  @layers [
    {NN.Conv2d, in_channels: 1, out_channels: 4, kernel_size: 3, padding: 1},
    :relu,
    {NN.MaxPool2d, kernel_size: 2},
    &__MODULE__.flatten/1,
    {NN.Linear, input_dims: 64, output_dims: 2}
  ]

  def flatten(x), do: Mx.reshape(x, {elem(x.shape, 0), :auto})

  # Image i (8×8, one channel) holds a line of ones through position rem(div(i, 2), 8): a row
  # for class 0, a column for class 1, plus N(0, 0.3²) noise drawn from `key`.
  defp images(key, n) do
    lines =
      for i <- 0..(n - 1) do
        {class, pos} = {rem(i, 2), rem(div(i, 2), 8)}

        for r <- 0..7,
            do: for(c <- 0..7, do: if(if(class == 0, do: r, else: c) == pos, do: 1.0, else: 0.0))
      end

    x = lines |> Mx.tensor() |> Mx.reshape({n, 8, 8, 1})
    noise = Mx.Random.normal(key, 0.0, 0.3, shape: {n, 8, 8, 1})
    {Mx.add(x, noise), Mx.tensor(for(i <- 0..(n - 1), do: rem(i, 2)))}
  end

  @tag :slow
  test "conv + max-pool + linear learns rows vs columns: loss < 0.05 from ln 2, held-out images all right" do
    [kp, ktrain, ktest] = NN.split_keys(Mx.Random.key(7), 3)
    {x, y} = images(ktrain, 64)
    {xt, yt} = images(ktest, 32)

    loss = fn p ->
      NN.Sequential.apply(p, x, layers: @layers) |> NN.Losses.cross_entropy(y, reduction: :mean)
    end

    step = Mx.value_and_grad(loss)
    lr = 0.5
    p0 = NN.Sequential.init(kp, layers: @layers)
    initial = loss.(p0) |> Mx.to_number()

    {p, l} =
      Enum.reduce(1..300, {p0, nil}, fn _, {p, _} ->
        {l, g} = step.(p)

        {Mx.eval(Mx.Tree.zip_with([p, g], fn [w, dw] -> Mx.subtract(w, Mx.multiply(dw, lr)) end)),
         l}
      end)

    final = Mx.to_number(l)
    assert initial > 0.5, "the untrained model already separates the classes: #{initial}"
    # Chance is ln 2 ≈ 0.69; 0.05 means the model puts ≈ 95% on the right class on average.
    assert final < 0.05, "cross-entropy after 300 steps: #{final} (initial #{initial})"

    predicted =
      NN.Sequential.apply(p, xt, layers: @layers) |> Mx.argmax(axis: 1) |> Mx.to_flat_list()

    assert predicted == Mx.to_flat_list(yt)
  end
end
