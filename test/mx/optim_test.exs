defmodule Mx.OptimTest do
  use ExUnit.Case, async: true
  doctest Mx.Optim
end
