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

  @doc "A choicemap from {address, value} pairs."
  def cm(pairs), do: Gen.choicemap(pairs)

  @doc "A choicemap's {path, value} pairs with the values as Elixir numbers."
  def pairs(cm), do: Enum.map(cm, fn {p, v} -> {p, num(v)} end)

  @doc "The values the test process was sent under `tag` (by instrumented kernels that count calls), oldest first."
  def calls(tag) do
    receive do
      {^tag, v} -> [v | calls(tag)]
    after
      0 -> []
    end
  end

  @doc """
  `Mx.Memory.live_arrays/0` once it has settled: resource destructors run shortly after the GC
  that dropped the last reference (see test/mx/memory_test.exs), so read the count once two
  reads 20 ms apart agree.
  """
  def settled_live(tries \\ 50) do
    :erlang.garbage_collect()
    a = Mx.Memory.live_arrays()
    Process.sleep(20)
    b = Mx.Memory.live_arrays()
    if a == b or tries == 0, do: b, else: settled_live(tries - 1)
  end

  def to_f(%Mx.Array{} = a), do: Mx.to_number(a)
  def to_f(x), do: x
end
