defmodule Mx.ShapeTest do
  # Reference cases from numpy/scipy (test/reference/shape.exs): one test per case, named by op, dtype and shapes.
  use ExUnit.Case, async: true
  alias Mx.ReferenceCase

  for c <- ReferenceCase.load!(["shape"]) do
    @c c
    test c.name, do: ReferenceCase.check!(@c)
  end
end
