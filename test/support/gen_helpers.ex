defmodule Gen.TestHelpers do
  @moduledoc false
  # Log-densities in plain Elixir floats, for hand-computed expected weights.

  @doc "log N(x; mu, sigma)."
  def ln_normal(x, mu, sigma), do: -0.5 * :math.pow((x - mu) / sigma, 2) - :math.log(sigma) - 0.5 * :math.log(2 * :math.pi())

  @doc "log Bernoulli(v; p)."
  def ln_bernoulli(true, p), do: :math.log(p)
  def ln_bernoulli(false, p), do: :math.log(1 - p)

  @doc "A scalar Mx value as an Elixir number or boolean."
  def num(x), do: Mx.to_number(x)

  @doc "Asserts |actual - expected| <= tol (actual may be an Mx scalar)."
  defmacro assert_close(actual, expected, tol \\ 1.0e-12) do
    quote do
      a = Gen.TestHelpers.to_f(unquote(actual))
      e = unquote(expected)
      ExUnit.Assertions.assert(abs(a - e) <= unquote(tol) * max(1.0, abs(e)), "expected #{e}, got #{a}")
    end
  end

  def to_f(%Mx.Array{} = a), do: Mx.to_number(a)
  def to_f(x), do: x
end
