defmodule Gen.Trace do
  @moduledoc """
  A record of one execution of a generative function (Gen.jl's trace):
  the function, its arguments, its random choices (a `Gen.Choicemap`), its
  return value, and its score, the log joint density of the choices as an
  f64 Mx scalar.

  `trace[addr]` (Access) is the value of the choice at an address or path.
  Read the parts with `Gen.get_choices/1`, `Gen.get_score/1`,
  `Gen.get_retval/1`, `Gen.get_args/1`, `Gen.get_gen_fn/1`.

  `subtraces` is the dynamic DSL's record of its trace sites (path => trace
  of the distribution or generative function called there); inference code
  uses only the GFI, never this field.
  """

  @behaviour Access

  @enforce_keys [:gen_fn, :args, :choices, :retval, :score]
  defstruct [:gen_fn, :args, :choices, :retval, :score, subtraces: %{}]

  @type t :: %__MODULE__{
          gen_fn: term(),
          args: [term()],
          choices: Gen.Choicemap.t(),
          retval: term(),
          score: Mx.t(),
          subtraces: %{optional([term()]) => t()}
        }

  @impl Access
  def fetch(%__MODULE__{choices: cm}, path) do
    if Gen.Choicemap.has_value?(cm, path), do: {:ok, Gen.Choicemap.get(cm, path)}, else: :error
  end

  @impl Access
  def get_and_update(_t, _k, _f), do: raise(ArgumentError, "Gen.Trace is immutable: change choices with Gen.update/2")

  @impl Access
  def pop(_t, _k), do: raise(ArgumentError, "Gen.Trace is immutable: change choices with Gen.update/2")
end

defimpl Inspect, for: Gen.Trace do
  def inspect(t, opts) do
    # A vectorized trace (Gen.Vectorized) has an f64[n] score: show its shape, not n numbers.
    score = if Mx.size(t.score) == 1, do: t.score |> Mx.to_number() |> inspect(), else: Mx.describe(t.score)
    Inspect.Algebra.concat(["#Gen.Trace<", Inspect.inspect(t.gen_fn, opts), " score: ", score, " ", Inspect.inspect(t.choices, opts), ">"])
  end
end
