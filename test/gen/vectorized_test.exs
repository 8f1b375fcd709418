defmodule Gen.VectorizedTest do
  use ExUnit.Case, async: true
  import Gen

  doctest Gen.Vectorized
  doctest Gen.Inference.Vectorized
end
