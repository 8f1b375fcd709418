defmodule Mx.MatmulTest do
  # Reference cases from numpy/scipy (test/reference/matmul.exs): one test per case, named by op, dtype and shapes.
  use ExUnit.Case, async: true
  alias Mx.ReferenceCase

  for c <- ReferenceCase.load!(["matmul"]) do
    @c c
    test c.name, do: ReferenceCase.check!(@c)
  end
end
