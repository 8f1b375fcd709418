defmodule Gen.Inference.TargetTest do
  use ExUnit.Case, async: true
  import Gen

  alias Gen.Inference.Target

  doctest Gen.Inference.Target
end
