defmodule Mx.ReferenceCoverageTest do
  use ExUnit.Case, async: true
  alias Mx.ReferenceCase

  # Primitives with no reference case, and why.
  @exceptions %{
    # The leaf that from_binary/tensor build: every case's inputs are constants.
    constant: "every case's inputs",
    # Counter-based generator with no numpy counterpart: checked by statistical tests, not references.
    random_bits: "statistical tests",
    random_normal: "statistical tests",
    random_truncated_normal: "statistical tests",
    random_gamma: "statistical tests",
    random_poisson: "statistical tests",
    random_randint: "statistical tests",
    # Internal to the LU gradient (the pivots as a permutation): checked by the det/slogdet gradient checks.
    lu_permutation: "transforms tests",
    # A compiled function's traced input (Mx.compile): it has no value to compare.
    placeholder: "compile tests",
    # Internal to scaled_dot_product_attention's gradient: checked against torch autograd in nn/sdpa_test.exs.
    scaled_dot_product_attention_vjp: "sdpa gradient tests"
  }

  test "every primitive in the engine's op table has reference cases" do
    covered = for f <- ReferenceCase.files(), c <- ReferenceCase.load!(f), into: MapSet.new(), do: c.fun
    missing = Enum.reject(Mx.NIF.op_names(), &(&1 in covered or Map.has_key?(@exceptions, &1)))
    assert missing == [], "primitives without reference cases: #{inspect(missing)}"
  end

  test "the exceptions are primitives that have no case (so the list cannot go stale)" do
    covered = for f <- ReferenceCase.files(), c <- ReferenceCase.load!(f), into: MapSet.new(), do: c.fun
    ops = MapSet.new(Mx.NIF.op_names())

    for op <- Map.keys(@exceptions) do
      assert op in ops, "#{op} is listed as an exception but is not a primitive"
      refute op in covered and op != :constant, "#{op} has reference cases; remove it from the exceptions"
    end
  end

  test "every reference file is run by a test module" do
    used = ~w(creation unary binary select_clip as_type reduce reduce_long scan shape index sort matmul linalg special complex fft) ++
             ~w(bitwise everyday conv window) ++ ~w(quant) ++ ~w(conv_grad) ++ ~w(sdpa)
    assert Enum.sort(used) == ReferenceCase.files()
  end
end
