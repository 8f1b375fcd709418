defmodule Mx.NN.ConvTest do
  # Conv, transposed conv, pooling and upsampling: gradients, init, Sequential, errors.
  # Forward values against PyTorch are in reference_test.exs.
  use ExUnit.Case, async: true
  import Mx.GradCheck, only: [check_grads!: 2, random_f64: 2]

  alias Mx.NN

  describe "gradients (central differences in f64, Mx.GradCheck)" do
    test "Conv2d: weight, bias and input, with stride, padding, dilation and groups" do
      f = fn w, b, x ->
        NN.Conv2d.apply(%{weight: w, bias: b}, x,
          stride: [2, 1],
          padding: 1,
          dilation: [1, 2],
          groups: 2
        )
      end

      check_grads!(f, [
        random_f64({4, 2, 2, 1}, 1),
        random_f64({4}, 2),
        random_f64({2, 5, 5, 2}, 3)
      ])
    end

    test "ConvTranspose2d: weight, bias and input, with stride, padding and output_padding" do
      f = fn w, b, x ->
        NN.ConvTranspose2d.apply(%{weight: w, bias: b}, x,
          stride: 2,
          padding: [1, 0],
          output_padding: [1, 0]
        )
      end

      check_grads!(f, [
        random_f64({3, 3, 2, 2}, 4),
        random_f64({3}, 5),
        random_f64({2, 3, 3, 2}, 6)
      ])
    end

    # Random inputs have no ties within a window, so the maximum is differentiable there.
    test "MaxPool2d and AvgPool2d, overlapping windows with padding" do
      x = random_f64({2, 5, 4, 2}, 7)

      check_grads!(
        fn x -> NN.MaxPool2d.apply(%{}, x, kernel_size: 3, stride: [2, 1], padding: 1) end,
        [x]
      )

      check_grads!(
        fn x -> NN.AvgPool2d.apply(%{}, x, kernel_size: [3, 2], stride: 1, padding: [1, 0]) end,
        [x]
      )
    end

    test "Upsample (linear and cubic, both corner rules; nearest)" do
      x = random_f64({1, 3, 2, 2}, 8)

      for interpolation <- [:linear, :cubic], align <- [false, true] do
        check_grads!(
          fn x ->
            NN.Upsample.apply(%{}, x,
              scale_factor: [2, 1.5],
              interpolation: interpolation,
              align_corners: align
            )
          end,
          [x]
        )
      end

      check_grads!(fn x -> NN.Upsample.apply(%{}, x, scale_factor: 2) end, [x])
    end
  end

  describe "init" do
    test "Conv2d: MLX's shapes, uniform weight in ±1/√(in · prod(k)), zero bias" do
      p =
        NN.Conv2d.init(Mx.Random.key(1),
          in_channels: 4,
          out_channels: 6,
          kernel_size: [3, 2],
          groups: 2
        )

      assert Mx.shape(p.weight) == {6, 3, 2, 2}
      assert Mx.to_flat_list(p.bias) == List.duplicate(0.0, 6)
      scale = :math.sqrt(1 / (4 * 6))
      ws = Mx.to_flat_list(p.weight)
      assert Enum.all?(ws, &(abs(&1) <= scale))
      # 72 uniform draws: the largest |w| falls below 0.8·scale with probability 0.8^72 ≈ 1e-7.
      assert Enum.max(Enum.map(ws, &abs/1)) > 0.8 * scale

      assert NN.Conv1d.init(Mx.Random.key(1),
               in_channels: 2,
               out_channels: 3,
               kernel_size: 5,
               bias: false
             )
             |> Map.keys() ==
               [:weight]
    end

    test "ConvTranspose3d and pooling shapes" do
      p =
        NN.ConvTranspose3d.init(Mx.Random.key(2),
          in_channels: 2,
          out_channels: 3,
          kernel_size: 2,
          type: :f64
        )

      assert {Mx.shape(p.weight), Mx.type(p.weight)} == {{3, 2, 2, 2, 2}, :f64}

      y =
        NN.ConvTranspose3d.apply(p, Mx.ones({1, 2, 3, 4, 2}, type: :f64),
          stride: 2,
          output_padding: 1
        )

      assert Mx.shape(y) == {1, 5, 7, 9, 3}
      assert NN.MaxPool3d.init(Mx.Random.key(0), kernel_size: 2) == %{}

      assert NN.AvgPool1d.apply(%{}, Mx.ones({2, 7, 3}), kernel_size: 2) |> Mx.shape() ==
               {2, 3, 3}
    end
  end

  test "a CNN in Sequential: conv, pool, upsample, transposed conv" do
    layers = [
      {NN.Conv2d, in_channels: 1, out_channels: 4, kernel_size: 3, padding: 1},
      :relu,
      {NN.MaxPool2d, kernel_size: 2},
      {NN.Upsample, scale_factor: 2, interpolation: :linear},
      {NN.ConvTranspose2d, in_channels: 4, out_channels: 2, kernel_size: 2, stride: 2}
    ]

    p = NN.Sequential.init(Mx.Random.key(3), layers: layers)
    assert NN.count_params(p) == 4 * 9 + 4 + 2 * 4 * 4 + 2

    assert NN.Sequential.apply(p, Mx.ones({2, 6, 6, 1}), layers: layers) |> Mx.shape() ==
             {2, 12, 12, 2}
  end

  describe "errors" do
    test "options and shapes" do
      w = %{weight: Mx.ones({2, 3, 4})}

      assert_raise ArgumentError, ~r/Mx.NN.Conv1d.apply: the input has 3 channels/, fn ->
        NN.Conv1d.apply(w, Mx.ones({1, 5, 3}))
      end

      assert_raise ArgumentError,
                   ~r/Mx.NN.Conv1d.apply: the input must be \{batch, 1 spatial axes/,
                   fn ->
                     NN.Conv1d.apply(w, Mx.ones({5, 4}))
                   end

      assert_raise ArgumentError, ~r/stride: must be an integer >= 1 or a list of 2/, fn ->
        NN.Conv2d.apply(%{weight: Mx.ones({1, 1, 1, 1})}, Mx.ones({1, 2, 2, 1}), stride: [1, 0])
      end

      assert_raise ArgumentError,
                   ~r/Mx.NN.Conv2d.init: groups: must be a positive integer dividing/,
                   fn ->
                     NN.Conv2d.init(Mx.Random.key(0),
                       in_channels: 3,
                       out_channels: 4,
                       kernel_size: 1,
                       groups: 2
                     )
                   end

      assert_raise ArgumentError,
                   ~r/Mx.NN.Conv3d.init: the option kernel_size: is required/,
                   fn ->
                     NN.Conv3d.init(Mx.Random.key(0), in_channels: 3, out_channels: 4)
                   end

      assert_raise ArgumentError,
                   ~r/output_padding \(2\) must be smaller than the stride \(2\)/,
                   fn ->
                     NN.ConvTranspose1d.apply(w, Mx.ones({1, 5, 4}), stride: 2, output_padding: 2)
                   end

      assert_raise ArgumentError, ~r/Mx.NN.Conv1d.apply: unknown option output_padding:/, fn ->
        NN.Conv1d.apply(w, Mx.ones({1, 5, 4}), output_padding: 1)
      end

      assert_raise ArgumentError,
                   ~r/Mx.NN.MaxPool2d.apply: padding \(2\) must be at most half/,
                   fn ->
                     NN.MaxPool2d.apply(%{}, Mx.ones({1, 4, 4, 1}), kernel_size: 3, padding: 2)
                   end

      assert_raise ArgumentError,
                   ~r/Mx.NN.AvgPool1d.apply: the option kernel_size: is required/,
                   fn ->
                     NN.AvgPool1d.apply(%{}, Mx.ones({1, 4, 1}))
                   end

      assert_raise ArgumentError,
                   ~r/Mx.NN.Upsample.apply: interpolation: must be :nearest, :linear or :cubic, got :bicubic/,
                   fn ->
                     NN.Upsample.apply(%{}, Mx.ones({1, 4, 1}),
                       scale_factor: 2,
                       interpolation: :bicubic
                     )
                   end

      assert_raise ArgumentError,
                   ~r/scale_factor: must be a positive number or a list of 2/,
                   fn ->
                     NN.Upsample.apply(%{}, Mx.ones({1, 4, 4, 1}), scale_factor: [2])
                   end

      assert_raise ArgumentError, ~r/leaves no output on spatial axis 0/, fn ->
        NN.Upsample.apply(%{}, Mx.ones({1, 4, 1}), scale_factor: 0.1)
      end
    end
  end

  test "Upsample nearest at a non-integer scale follows MLX's rounding" do
    # n = 2, m = 5: round((i + 0.5)·2/5 - 0.5) = round(-0.3, 0.1, 0.5, 0.9, 1.3) = 0, 0, 0 (tie to even), 1, 1.
    x = Mx.tensor([[[1.0], [2.0]]])

    assert NN.Upsample.apply(%{}, x, scale_factor: 2.5) |> Mx.to_flat_list() == [
             1.0,
             1.0,
             1.0,
             2.0,
             2.0
           ]

    # Downsampling: floor(i·n/m), n = 5, m = 2: inputs 0 and 2.
    y = Mx.tensor([[[1.0], [2.0], [3.0], [4.0], [5.0]]])
    assert NN.Upsample.apply(%{}, y, scale_factor: 0.5) |> Mx.to_flat_list() == [1.0, 3.0]
  end
end
