defmodule Gen.Inference.Common do
  @moduledoc false
  # Option validators and the Metropolis–Hastings accept step shared by the inference modules.
  # `where` is the public function an error names, e.g. "Gen.Inference.run".

  @doc false
  # An integer option >= min; `default: nil` makes it required.
  @spec count!(keyword(), atom(), integer() | nil, integer(), String.t()) :: integer()
  def count!(opts, name, default, min, where) do
    case Keyword.get(opts, name, default) do
      n when is_integer(n) and n >= min ->
        n

      other ->
        raise ArgumentError,
              "#{where}: #{name}: must be an integer >= #{min}#{required(default)}, got #{inspect(other)}"
    end
  end

  @doc false
  # A positive number option, as a float; `default: nil` makes it required.
  @spec positive!(keyword(), atom(), number() | nil, String.t()) :: float()
  def positive!(opts, name, default, where) do
    case Keyword.get(opts, name, default) do
      x when is_number(x) and x > 0 ->
        x * 1.0

      other ->
        raise ArgumentError,
              "#{where}: #{name}: must be a positive number#{required(default)}, got #{inspect(other)}"
    end
  end

  @doc false
  # An optional function option of the given arity (nil when absent).
  @spec fun!(keyword(), atom(), non_neg_integer(), String.t()) :: function() | nil
  def fun!(opts, name, arity, where) do
    case Keyword.get(opts, name) do
      nil ->
        nil

      f when is_function(f, arity) ->
        f

      other ->
        raise ArgumentError,
              "#{where}: #{name}: must be a function of #{arity} argument or nil, got #{inspect(other)}"
    end
  end

  @doc false
  # A value for an error message, on one line: an array by its type and shape (inspect would print its data).
  @spec describe(term()) :: String.t()
  def describe(%Mx.Array{} = a), do: "a #{Mx.describe(a)} array"
  def describe(other), do: inspect(other)

  defp required(nil), do: " (required)"
  defp required(_), do: ""

  @doc false
  # Raises unless `sel` selects a choice of `trace` (a typo in an address would otherwise give
  # a kernel that never moves); `fix` ends the message.
  @spec selects_some!(Gen.Trace.t(), Gen.Selection.t(), String.t(), String.t()) :: :ok
  def selects_some!(trace, sel, where, fix) do
    paths = trace |> Gen.get_choices() |> Gen.Choicemap.to_list() |> Enum.map(&elem(&1, 0))

    if Enum.any?(paths, &Gen.Selection.member?(sel, &1)),
      do: :ok,
      else: none_selected!(trace, sel, where, fix)
  end

  @doc false
  # The error for a selection that selects no choice of the trace, listing the trace's addresses.
  @spec none_selected!(Gen.Trace.t(), Gen.Selection.t(), String.t(), String.t()) :: no_return()
  def none_selected!(trace, sel, where, fix) do
    paths = trace |> Gen.get_choices() |> Gen.Choicemap.to_list() |> Enum.map(&elem(&1, 0))

    shown =
      paths
      |> Enum.take(20)
      |> Enum.map_join(", ", fn
        [a] -> inspect(a)
        p -> inspect(p)
      end)

    more = if length(paths) > 20, do: ", ... (#{length(paths)} in all)", else: ""

    addresses =
      if paths == [],
        do: "the trace has no choices",
        else: "the trace's addresses are #{shown}#{more}"

    raise ArgumentError,
          "#{where}: the selection #{inspect(sel)} selects no choice of the trace (#{addresses}); #{fix}"
  end

  @doc false
  # Runs `fun`, which builds and evaluates the density at a proposal: {:ok, its result}, or
  # :rejected when the engine raised there (a Cholesky of a covariance that is not positive
  # definite, say), so the move is rejected and the chain goes on, as in Stan. Running out of
  # memory or using a disposed array is no property of the proposal: those still raise.
  @spec at_proposal((() -> result)) :: {:ok, result} | :rejected when result: term()
  def at_proposal(fun) do
    {:ok, fun.()}
  rescue
    e in Mx.Error ->
      if String.contains?(e.message, ["memory limit", "disposed"]),
        do: reraise(e, __STACKTRACE__),
        else: :rejected
  end

  @doc false
  # Accept when log u < log α; NaN (a move out of the support) rejects.
  @spec accept(Gen.Trace.t(), Gen.Trace.t(), Mx.t(), Mx.t()) :: {Gen.Trace.t(), boolean()}
  def accept(old, new, log_alpha, key) do
    u = key |> Mx.Random.uniform(type: :f64) |> Mx.to_number()

    accept? =
      case Mx.to_number(log_alpha) do
        :infinity -> true
        x when is_float(x) -> u > 0.0 and :math.log(u) < x
        _ -> false
      end

    if accept?, do: {Gen.Inference.force(new), true}, else: {old, false}
  end
end
