defmodule Mx.RandomTest do
  use ExUnit.Case, async: true
  doctest Mx.Random
end
