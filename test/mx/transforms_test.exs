defmodule Mx.TransformsTest do
  use ExUnit.Case, async: true
  import Mx.GradCheck

  import Mx.OpCases, only: [cases: 0]

  for {op, list} <- [
        as_type: 1, negate: 1, abs: 2, square: 1, exp: 1, expm1: 1, log: 1, log1p: 1, sqrt: 1, rsqrt: 1,
        reciprocal: 1, sin: 1, cos: 1, tan: 1, asin: 1, acos: 1, atan: 1, sinh: 1, cosh: 1, tanh: 1, sigmoid: 1,
        erf: 1, erf_inv: 1, lgamma: 1, digamma: 1, erfc: 1, log_ndtr: 1, ndtri: 1, igamma: 1, igammac: 1,
        betainc: 1, add: 1, subtract: 1, multiply: 1, divide: 1, pow: 1, max: 1, min: 1,
        remainder: 1, atan2: 1, logaddexp: 1, select: 1, sum: 2, product: 1, reduce_max: 1, reduce_min: 1,
        cumulative_sum: 2, cumulative_product: 1, reshape: 1, transpose: 1, broadcast: 1, concatenate: 1,
        slice: 1, pad: 1, reverse: 1, take: 1, take_along_axis: 1, gather: 1, indexed_add: 1, indexed_put: 1,
        sort: 1, matmul: 4, complex: 1, real: 1, imag: 1, conjugate: 1, angle: 1, fft: 2, rfft: 2, irfft: 2,
        abs_complex: 2, cholesky: 1, lu: 3, solve: 2, triangular_solve: 2, eigh: 2,
        asinh: 1, acosh: 1, atanh: 1, log2: 1, log10: 1,
        conv: 3, window_sum: 1, window_max: 1, window_min: 1, window_scatter_max: 1, window_scatter_min: 1,
        conv_input_grad: 2, conv_kernel_grad: 2,
        scaled_dot_product_attention: 2, scaled_dot_product_attention_vjp: 1
      ],
      i <- 0..(list - 1) do
    test "#{op} gradient matches finite differences (case #{i})" do
      {_desc, f, inputs} = Keyword.fetch!(cases(), unquote(op)) |> Enum.at(unquote(i))
      check_grads!(f, inputs)
    end

    test "#{op} vjp agrees with jvp (case #{i})" do
      {_desc, f, inputs} = Keyword.fetch!(cases(), unquote(op)) |> Enum.at(unquote(i))
      check_vjp_jvp!(f, inputs)
    end
  end

  test "every differentiable primitive in the op table has a gradient check" do
    differentiable = for {op, :D} <- Mx.NIF.op_grads(), do: op
    assert Enum.sort(differentiable) -- Keyword.keys(cases()) == []
  end

  test "grad of grad" do
    d2 = Mx.grad(fn x -> Mx.sum(Mx.grad(fn y -> Mx.sum(Mx.multiply(Mx.sin(y), y)) end).(x)) end)
    x = Mx.tensor([0.3, 1.2], type: :f64)
    # d/dx (sin x + x cos x) = 2 cos x - x sin x
    expected = Mx.subtract(Mx.multiply(Mx.cos(x), 2.0), Mx.multiply(x, Mx.sin(x))) |> Mx.to_list()
    for {a, e} <- Enum.zip(Mx.to_list(d2.(x)), expected), do: assert_in_delta(a, e, 1.0e-12)
  end

  test "containers: gradients come back in the shape of the inputs" do
    f = fn %{w: w, b: {b}} -> Mx.sum(Mx.add(Mx.multiply(w, 2.0), b)) end
    g = Mx.grad(f).(%{w: Mx.tensor([1.0, 2.0]), b: {Mx.tensor(3.0)}})
    assert %{w: gw, b: {gb}} = g
    assert Mx.to_list(gw) == [2.0, 2.0]
    assert Mx.to_number(gb) == 2.0
  end

  test "value_and_grad returns the value and respects argnums" do
    f = fn x, y -> Mx.sum(Mx.multiply(x, y)) end
    {v, g} = Mx.value_and_grad(f, 1).(Mx.tensor([1.0, 2.0]), Mx.tensor([3.0, 4.0]))
    assert Mx.to_number(v) == 11.0
    assert Mx.to_list(g) == [1.0, 2.0]
  end

  test "an input the output does not depend on gets a zero gradient" do
    assert Mx.grad(fn _x, y -> Mx.sum(y) end, 0).(Mx.tensor([1.0, 2.0]), Mx.tensor([1.0])) |> Mx.to_list() == [0.0, 0.0]
  end

  test "grad needs a one-element output" do
    assert_raise ArgumentError, ~r/one-element array.*Mx.sum/, fn -> Mx.grad(&Mx.exp/1).(Mx.tensor([1.0, 2.0])) end
  end

  test "ops without a gradient raise naming the op" do
    assert_raise Mx.Error, ~r/\[cumulative_max\] has no gradient yet/, fn ->
      Mx.grad(fn x -> Mx.sum(Mx.cumulative_max(x)) end).(Mx.tensor([1.0, 2.0]))
    end
  end
end

defmodule Mx.TransformsMemoryTest do
  # Not async: live_arrays is a global count that concurrent tests would move.
  use ExUnit.Case, async: false

  test "a training loop keeps memory flat" do
    step = fn w ->
      g = Mx.grad(fn w -> Mx.sum(Mx.square(Mx.subtract(w, 3.0))) end).(w)
      Mx.subtract(w, Mx.multiply(g, 0.1)) |> Mx.eval()
    end

    w = Enum.reduce(1..200, Mx.zeros({4}), fn _, w -> step.(w) end)
    :erlang.garbage_collect()
    base = Mx.Memory.live_arrays()
    w = Enum.reduce(1..2000, w, fn _, w -> step.(w) end)
    :erlang.garbage_collect()
    # Each step builds ~20 nodes; were the graphs kept, 2000 steps would leave ~40_000.
    # The slack covers arrays of unrelated processes still waiting for their GC.
    assert Mx.Memory.live_arrays() <= base + 500
    assert Enum.all?(Mx.to_list(w), &(abs(&1 - 3.0) < 1.0e-5))
  end
end
