defmodule MxDoctestTest do
  use ExUnit.Case, async: true
  # Docs are tests: every example in the public modules' docs runs here.
  doctest Mx
  doctest Mx.Array
  doctest Mx.Type
  doctest Mx.Memory
  doctest Mx.Special
  doctest Mx.FFT
  doctest Mx.Compile
  doctest Mx.Tree
  doctest Mx.IO
end
