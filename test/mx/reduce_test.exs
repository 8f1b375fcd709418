defmodule Mx.ReduceTest do
  # Reference cases from numpy/scipy (test/reference/{reduce,reduce_long,scan}.exs): one test per case, named by op, dtype and shapes.
  use ExUnit.Case, async: true
  alias Mx.ReferenceCase

  for c <- ReferenceCase.load!(["reduce", "reduce_long", "scan"]) do
    @c c
    test c.name, do: ReferenceCase.check!(@c)
  end
end
