defmodule Mx.VmapTest do
  use ExUnit.Case, async: true
  import Mx.GradCheck, only: [random_f64: 4]

  # Non-differentiable primitives, so every primitive gets a vmap-vs-loop check.
  defp extra_cases do
    i = fn list -> Mx.tensor(list, type: :s64) end
    x = random_f64({2, 3}, 90, -2.0, 2.0)

    [
      sign: &Mx.sign/1, floor: &Mx.floor/1, ceil: &Mx.ceil/1, round: &Mx.round/1, trigamma: &Mx.trigamma/1,
      is_nan: &Mx.is_nan/1, is_infinity: &Mx.is_infinity/1, logical_not: &Mx.logical_not/1,
      equal: &Mx.equal(&1, 0.5), less: &Mx.less(&1, Mx.tensor([0.0, 1.0, -1.0], type: :f64)),
      logical_and: &Mx.logical_and(&1, Mx.greater(&1, 0.0)),
      argmax: &Mx.argmax(&1, axis: 1), argmin: &Mx.argmin/1, all: &Mx.all(Mx.greater(&1, -1.5), axes: [0]),
      any: &Mx.any(Mx.greater(&1, 1.0)), cumulative_max: &Mx.cumulative_max(&1, axis: 1),
      cumulative_min: &Mx.cumulative_min(&1, axis: 0, reverse: true), argsort: &Mx.argsort(&1, axis: 0),
      iota_plus: &Mx.add(&1, Mx.iota({2, 3}, type: :f64)), gather_two: &Mx.gather(&1, i.([[1, 2], [0, 0]]))
    ]
    |> Enum.map(fn {name, f} -> {name, [{"", f, [x]}]} end)
  end

  # Three different examples per input, each staying in its op's domain (positive
  # definite inputs stay so): the input and two shrunk, shifted copies.
  defp batch(x), do: Mx.stack([x, Mx.add(Mx.multiply(x, 0.5), 0.1), Mx.add(Mx.multiply(x, 0.75), 0.05)])

  for {op, n} <- Enum.map(Mx.OpCases.cases(), fn {op, l} -> {op, length(l)} end) ++
                   [sign: 1, floor: 1, ceil: 1, round: 1, trigamma: 1, is_nan: 1, is_infinity: 1, logical_not: 1,
                    equal: 1, less: 1, logical_and: 1, argmax: 1, argmin: 1, all: 1, any: 1, cumulative_max: 1,
                    cumulative_min: 1, argsort: 1, iota_plus: 1, gather_two: 1],
      k <- 0..(n - 1) do
    test "vmap of #{op} (case #{k}) matches a loop over examples" do
      {_desc, f, inputs} = (Mx.OpCases.cases() ++ extra_cases()) |> Keyword.fetch!(unquote(op)) |> Enum.at(unquote(k))
      batched = Enum.map(inputs, &batch/1)
      vf = apply(Mx.Transforms, :vmap, [f])
      got = apply(vf, batched) |> Mx.to_list()

      expected =
        for b <- 0..2 do
          apply(f, Enum.map(batched, & &1[b])) |> Mx.to_list()
        end

      assert got == expected
    end
  end

  test "in_axes nil shares an argument; out_axes moves the batch axis" do
    f = fn x, w -> Mx.multiply(x, w) end
    out = Mx.vmap(f, [1, nil], 1).(Mx.tensor([[1.0, 2.0], [3.0, 4.0]]), Mx.tensor([10.0, 100.0]))
    assert Mx.to_list(out) == [[10.0, 20.0], [300.0, 400.0]]
  end

  test "containers in and out" do
    f = fn %{a: a, b: b} -> {Mx.sum(a), Mx.multiply(b, 2)} end
    {s, d} = Mx.vmap(f).(%{a: Mx.tensor([[1, 2], [3, 4]]), b: Mx.tensor([5, 6])})
    assert Mx.to_list(s) == [3, 7]
    assert Mx.to_list(d) == [10, 12]
  end

  test "an output that does not depend on the batch is broadcast" do
    out = Mx.vmap(fn _x -> Mx.tensor(7.0) end).(Mx.zeros({3, 2}))
    assert Mx.to_list(out) == [7.0, 7.0, 7.0]
  end

  test "vmap composes with grad both ways" do
    x = Mx.tensor([[0.0, 1.0], [2.0, 3.0]], type: :f64)
    per_example = Mx.vmap(Mx.grad(fn x -> Mx.sum(Mx.sin(x)) end)).(x) |> Mx.to_list()
    assert per_example == Mx.cos(x) |> Mx.to_list()
    total = Mx.grad(fn x -> Mx.sum(Mx.vmap(fn r -> Mx.sum(Mx.square(r)) end).(x)) end).(x) |> Mx.to_list()
    assert total == Mx.multiply(x, 2.0) |> Mx.to_list()
  end

  test "reading a batched value inside f raises (f runs once, on placeholders); shared values read fine" do
    assert_raise ArgumentError, ~r/vmap: the function read the values of f32, which depends on a batched argument.*Mx.select/, fn ->
      Mx.vmap(fn x -> if Mx.to_number(Mx.sum(x)) > 0, do: x, else: Mx.negate(x) end).(Mx.tensor([[1.0], [-1.0]]))
    end

    shared = Mx.tensor([2.0])
    out = Mx.vmap(fn x, s -> Mx.multiply(x, Mx.to_number(Mx.sum(s))) end, [0, nil]).(Mx.tensor([1.0, 3.0]), shared)
    assert Mx.to_list(out) == [2.0, 6.0]
  end

  test "more batched arrays than the engine replays at once raise instead of crashing" do
    k = Mx.Transforms.max_batched()
    sum = fn l -> Enum.reduce(l, &Mx.add/2) end
    assert Mx.to_list(Mx.vmap(sum).(List.duplicate(Mx.ones({3}), k))) == List.duplicate(k * 1.0, 3)

    assert_raise ArgumentError, ~r/vmap: #{k + 1} batched arrays, but the engine's vmap replays at most #{k} at once/, fn ->
      Mx.vmap(sum).(List.duplicate(Mx.ones({3}), k + 1))
    end
  end

  test "mismatched batch sizes raise" do
    assert_raise ArgumentError, ~r/different batch sizes/, fn ->
      Mx.vmap(&Mx.add/2).(Mx.zeros({2, 3}), Mx.zeros({3, 3}))
    end
  end
end
