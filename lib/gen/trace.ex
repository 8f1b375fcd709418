defmodule Gen.Trace do
  @moduledoc """
  A record of one execution of a generative function (Gen.jl's trace):
  the function, its arguments, its random choices (a `Gen.Choicemap`), its
  return value, and its score, the log joint density of the choices as an
  f64 Mx scalar.

  `trace[addr]` (Access) is the value of the choice at an address or path;
  an address without a choice raises `KeyError`, naming it and the
  addresses the trace has, so a typo never passes as `nil` (unlike Elixir's
  maps, and unlike `Gen.Choicemap`, whose `cm[addr]` is nil for a missing
  address: a choicemap is often partial). Test for a choice with
  `Gen.Choicemap.has_value?(Gen.get_choices(trace), addr)`. Read the parts with `Gen.get_choices/1`, `Gen.get_score/1`,
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
  # Raises instead of returning :error: `trace[addr]` is Access.get, which would turn :error into nil.
  def fetch(%__MODULE__{choices: cm} = trace, path) do
    if Gen.Choicemap.has_value?(cm, path), do: {:ok, Gen.Choicemap.get(cm, path)}, else: missing!(trace, path)
  end

  @max_listed 20

  defp missing!(%__MODULE__{choices: cm} = trace, path) do
    p = Gen.Choicemap.path!(path)
    addrs = Enum.map(cm, fn {q, _} -> if match?([_], q), do: hd(q), else: q end)
    listed = addrs |> Enum.take(@max_listed) |> Enum.map_join(", ", &inspect/1)
    more = if length(addrs) > @max_listed, do: ", ... (#{length(addrs)} in all)", else: ""

    what =
      if Gen.Choicemap.empty?(Gen.Choicemap.get_submap(cm, p)),
        do: "no random choice at #{Gen.Choicemap.format_path(p)}",
        else: "#{Gen.Choicemap.format_path(p)} holds a submap of choices, not one value (read it with Gen.Choicemap.get_submap/2)"

    raise KeyError,
      key: path,
      term: trace,
      message: "Gen.Trace: #{what} in the trace of #{inspect(trace.gen_fn)}#{suggest(path, addrs)}; its choices are at [#{listed}#{more}]"
  end

  # The closest address by spelling, for a typo.
  defp suggest(path, addrs) do
    s = inspect(path)
    best = Enum.max_by(addrs, &String.jaro_distance(inspect(&1), s), fn -> nil end)
    if best != nil and String.jaro_distance(inspect(best), s) >= 0.8, do: " (did you mean #{inspect(best)}?)", else: ""
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
