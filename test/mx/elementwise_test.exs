defmodule Mx.ElementwiseTest do
  # Reference cases from numpy/scipy (test/reference/{unary,binary,select_clip,as_type}.exs):
  # one test per case, named by op, dtype and shapes.
  use ExUnit.Case, async: true
  alias Mx.ReferenceCase

  for c <- ReferenceCase.load!(["unary", "binary", "select_clip", "as_type"]) do
    @c c
    test c.name, do: ReferenceCase.check!(@c)
  end
end
