defmodule Mx.TransformsTest do
  use ExUnit.Case, async: true
  import Mx.GradCheck

  # Inputs: r(shape, seed) in [-1, 1); pos(shape, seed) in [0.5, 2); all f64.
  defp r(shape, seed), do: random_f64(shape, seed)
  defp pos(shape, seed), do: random_f64(shape, seed, 0.5, 2.0)
  defp small(shape, seed), do: random_f64(shape, seed, -0.8, 0.8)
  defp idx(list), do: Mx.tensor(list, type: :s64)

  # One entry per differentiable primitive (vjp column D in c_src/ops.def):
  # {primitive, [{description, f, inputs}]}. Domains avoid kinks and poles.
  defp cases do
    [
      as_type: [{"f64 -> f64", &Mx.as_type(&1, :f64), [r({3}, 1)]}],
      negate: [{"", &Mx.negate/1, [r({2, 3}, 1)]}],
      abs: [{"away from 0", &Mx.abs/1, [pos({4}, 2)]}, {"negative", &Mx.abs/1, [Mx.negate(pos({3}, 3))]}],
      square: [{"", &Mx.square/1, [r({3}, 4)]}],
      exp: [{"", &Mx.exp/1, [r({3}, 5)]}],
      expm1: [{"", &Mx.expm1/1, [r({3}, 6)]}],
      log: [{"", &Mx.log/1, [pos({3}, 7)]}],
      log1p: [{"", &Mx.log1p/1, [small({3}, 8)]}],
      sqrt: [{"", &Mx.sqrt/1, [pos({3}, 9)]}],
      rsqrt: [{"", &Mx.rsqrt/1, [pos({3}, 10)]}],
      reciprocal: [{"", &Mx.reciprocal/1, [pos({3}, 11)]}],
      sin: [{"", &Mx.sin/1, [r({3}, 12)]}],
      cos: [{"", &Mx.cos/1, [r({3}, 13)]}],
      tan: [{"", &Mx.tan/1, [small({3}, 14)]}],
      asin: [{"", &Mx.asin/1, [small({3}, 15)]}],
      acos: [{"", &Mx.acos/1, [small({3}, 16)]}],
      atan: [{"", &Mx.atan/1, [r({3}, 17)]}],
      sinh: [{"", &Mx.sinh/1, [r({3}, 18)]}],
      cosh: [{"", &Mx.cosh/1, [r({3}, 19)]}],
      tanh: [{"", &Mx.tanh/1, [r({3}, 20)]}],
      sigmoid: [{"", &Mx.sigmoid/1, [r({3}, 21)]}],
      erf: [{"", &Mx.erf/1, [r({3}, 22)]}],
      erf_inv: [{"", &Mx.erf_inv/1, [small({3}, 23)]}],
      lgamma: [{"", &Mx.lgamma/1, [pos({3}, 24)]}],
      add: [{"broadcast", &Mx.add/2, [r({2, 3}, 25), r({3}, 26)]}],
      subtract: [{"broadcast", &Mx.subtract/2, [r({2, 1}, 27), r({1, 3}, 28)]}],
      multiply: [{"broadcast", &Mx.multiply/2, [r({2, 3}, 29), r({}, 30)]}],
      divide: [{"broadcast", &Mx.divide/2, [r({2, 3}, 31), pos({3}, 32)]}],
      pow: [{"", &Mx.pow/2, [pos({3}, 33), r({3}, 34)]}],
      max: [{"", &Mx.max/2, [r({4}, 35), r({4}, 36)]}],
      min: [{"", &Mx.min/2, [r({4}, 37), r({4}, 38)]}],
      remainder: [{"", &Mx.remainder/2, [Mx.tensor([2.5, -2.5, 0.7], type: :f64), Mx.tensor([1.0, 1.0, 0.4], type: :f64)]}],
      atan2: [{"", &Mx.atan2/2, [r({3}, 39), pos({3}, 40)]}],
      logaddexp: [{"", &Mx.logaddexp/2, [r({3}, 41), r({3}, 42)]}],
      select: [{"", &Mx.select(Mx.tensor([1, 0, 1]), &1, &2), [r({3}, 43), r({2, 3}, 44)]}],
      sum: [{"axis 1", &Mx.sum(&1, axes: [1]), [r({2, 3}, 45)]}, {"all", &Mx.sum/1, [r({2, 3}, 46)]}],
      product: [{"axis 0", &Mx.product(&1, axes: [0]), [pos({3, 2}, 47)]}],
      reduce_max: [{"", &Mx.reduce_max(&1, axes: [1]), [r({2, 4}, 48)]}],
      reduce_min: [{"", &Mx.reduce_min(&1, axes: [0], keep_axes: true), [r({3, 2}, 49)]}],
      cumulative_sum: [{"", &Mx.cumulative_sum(&1, axis: 1), [r({2, 3}, 50)]},
                       {"reverse", &Mx.cumulative_sum(&1, reverse: true), [r({4}, 51)]}],
      cumulative_product: [{"", &Mx.cumulative_product(&1, axis: 0), [pos({3, 2}, 52)]}],
      reshape: [{"", &Mx.reshape(&1, {3, 2}), [r({2, 3}, 53)]}],
      transpose: [{"", &Mx.transpose(&1, axes: [1, 2, 0]), [r({2, 3, 2}, 54)]}],
      broadcast: [{"", &Mx.broadcast(&1, {2, 3}), [r({3}, 55)]}],
      concatenate: [{"", &Mx.concatenate([&1, &2], axis: 1), [r({2, 2}, 56), r({2, 1}, 57)]}],
      slice: [{"strided", &Mx.slice(&1, [0, 1], [2, 2], strides: [1, 2]), [r({3, 5}, 58)]}],
      pad: [{"interior and crop", &Mx.pad(&1, &2, [{1, -1, 1}, {0, 2, 0}]), [r({3, 2}, 59), r({}, 60)]}],
      reverse: [{"", &Mx.reverse(&1, axes: [0]), [r({3, 2}, 61)]}],
      take: [{"axis 1, repeats", &Mx.take(&1, idx([[2, 0], [2, 2]]), axis: 1), [r({2, 3}, 62)]}],
      take_along_axis: [{"", &Mx.take_along_axis(&1, idx([[1, 1], [0, 2]]), axis: 1), [r({2, 3}, 63)]}],
      gather: [{"", &Mx.gather(&1, idx([[1, 0], [1, 0], [0, 2]])), [r({2, 3}, 64)]}],
      indexed_add: [{"", &Mx.indexed_add(&1, idx([[0], [2], [0]]), &2), [r({3, 2}, 65), r({3, 2}, 66)]}],
      indexed_put: [{"", &Mx.indexed_put(&1, idx([[1], [2]]), &2), [r({3, 2}, 67), r({2, 2}, 68)]}],
      sort: [{"desc", &Mx.sort(&1, axis: 1, direction: :desc), [r({2, 4}, 69)]}],
      matmul: [{"batched, broadcast", &Mx.matmul/2, [r({2, 2, 3}, 70), r({3, 4}, 71)]},
               {"vector", &Mx.matmul/2, [r({3}, 72), r({3, 2}, 73)]}]
    ]
  end

  for {op, list} <- [
        as_type: 1, negate: 1, abs: 2, square: 1, exp: 1, expm1: 1, log: 1, log1p: 1, sqrt: 1, rsqrt: 1,
        reciprocal: 1, sin: 1, cos: 1, tan: 1, asin: 1, acos: 1, atan: 1, sinh: 1, cosh: 1, tanh: 1, sigmoid: 1,
        erf: 1, erf_inv: 1, lgamma: 1, add: 1, subtract: 1, multiply: 1, divide: 1, pow: 1, max: 1, min: 1,
        remainder: 1, atan2: 1, logaddexp: 1, select: 1, sum: 2, product: 1, reduce_max: 1, reduce_min: 1,
        cumulative_sum: 2, cumulative_product: 1, reshape: 1, transpose: 1, broadcast: 1, concatenate: 1,
        slice: 1, pad: 1, reverse: 1, take: 1, take_along_axis: 1, gather: 1, indexed_add: 1, indexed_put: 1,
        sort: 1, matmul: 2
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
    assert_raise Mx.Error, ~r/\[digamma\] has no gradient yet/, fn ->
      Mx.grad(fn x -> Mx.sum(Mx.digamma(x)) end).(Mx.tensor([1.0]))
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
