defmodule Mx.ReferenceCoverageTest do
  use ExUnit.Case, async: true
  alias Mx.ReferenceCase

  # Primitives with no case of their own, and why.
  @exceptions %{
    # The leaf that from_binary/tensor build: every case's inputs are constants.
    constant: "every case"
  }

  test "every primitive in the engine's op table has reference cases" do
    covered = for f <- ReferenceCase.files(), c <- ReferenceCase.load!(f), into: MapSet.new(), do: c.fun
    missing = Enum.reject(Mx.NIF.op_names(), &(&1 in covered or Map.has_key?(@exceptions, &1)))
    assert missing == [], "primitives without reference cases: #{inspect(missing)}"
  end

  test "every reference file is run by a test module" do
    used = ~w(creation unary binary select_clip as_type reduce reduce_long scan shape index sort matmul)
    assert Enum.sort(used) == ReferenceCase.files()
  end
end
