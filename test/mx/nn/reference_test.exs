defmodule Mx.NN.ReferenceTest do
  @moduledoc """
  Every activation, loss and layer forward against PyTorch 1.13 (or a numpy
  formula where torch lacks the function): test/reference/nn/cases.exs,
  written by test/reference/generate_nn.py.

  The expected values are computed in f64 from the case's (rounded) inputs,
  so the error is Mx's own rounding. The deepest case (a transformer layer)
  chains ~40 ops, each with relative error ≤ u, amplified by at most ~10
  through layer normalization and softmax; 64·u·(1 + |expected|) with u the
  unit roundoff (2^-24 for f32, 2^-53 for f64) would be tight, so the bound
  is 400·u: 2.4e-5 in f32 and 4.4e-14 in f64, still far below any error of a
  wrong formula.
  """
  use ExUnit.Case, async: true

  @path Path.expand("../../reference/nn/cases.exs", __DIR__)
  @external_resource @path
  {cases, _} = Code.eval_file(@path)

  for c <- cases do
    @c c
    test c.name do
      c = @c
      args = decode(c.args)
      opts = decode(c.opts)
      result = apply(c.module, c.fun, if(opts == [], do: args, else: args ++ [opts]))
      compare!(result, decode(c.expected), c.type, [])
    end
  end

  defp decode({:array, type, shape, hex}),
    do: Mx.from_binary(Base.decode16!(hex), type, shape: shape)

  defp decode(t) when is_tuple(t),
    do: t |> Tuple.to_list() |> Enum.map(&decode/1) |> List.to_tuple()

  defp decode(l) when is_list(l), do: Enum.map(l, &decode/1)
  defp decode(m) when is_map(m), do: Map.new(m, fn {k, v} -> {k, decode(v)} end)
  defp decode(x), do: x

  @u %{f32: :math.pow(2, -24), f64: :math.pow(2, -53)}

  defp compare!(%Mx.Array{} = got, %Mx.Array{} = want, type, path) do
    assert Mx.shape(got) == Mx.shape(want),
           "at #{inspect(path)}: shape #{inspect(Mx.shape(got))}, expected #{inspect(Mx.shape(want))}"

    assert Mx.type(got) == type, "at #{inspect(path)}: type #{Mx.type(got)}, expected #{type}"
    tol = 400 * @u[type]

    for {{g, w}, i} <- Enum.with_index(Enum.zip(Mx.to_flat_list(got), Mx.to_flat_list(want))) do
      ok = if is_float(w), do: is_float(g) and abs(g - w) <= tol * (1 + abs(w)), else: g == w

      assert ok,
             "at #{inspect(path)} element #{i}: got #{inspect(g)}, expected #{inspect(w)} (tolerance #{tol}·(1 + |expected|))"
    end
  end

  defp compare!(got, want, type, path) when is_tuple(want) do
    assert is_tuple(got) and tuple_size(got) == tuple_size(want),
           "at #{inspect(path)}: expected a #{tuple_size(want)}-tuple, got #{inspect(got)}"

    for i <- 0..(tuple_size(want) - 1),
        do: compare!(elem(got, i), elem(want, i), type, path ++ [i])
  end

  defp compare!(got, want, type, path) when is_map(want) do
    assert is_map(got) and Enum.sort(Map.keys(got)) == Enum.sort(Map.keys(want)),
           "at #{inspect(path)}: keys differ: #{inspect(got)}"

    for {k, w} <- want, do: compare!(Map.fetch!(got, k), w, type, path ++ [k])
  end
end
