defmodule Gen.NaNError do
  @moduledoc """
  Raised when a GFI call (`Gen.simulate/3`, `Gen.generate/4`,
  `Gen.update/5`, `Gen.regenerate/5`, `Gen.assess/3`, `Gen.propose/3`, and
  their vectorized forms) would return a NaN score or weight. The message
  names the first trace site, in the order the body ran, whose log density
  (or weight) is NaN, its distribution and parameters, and the value; the
  fields hold the method, the address (a path, or nil when no site could be
  named) and the distribution or factor.

  A NaN log density comes from NaN parameters (a log of a negative number,
  0/0, an overflow upstream), never from the posterior itself, so
  importance sampling and SMC raise it too rather than return NaN weights
  and a NaN log marginal likelihood (dropping those particles would bias
  the estimate without a word).
  """
  defexception [:message, :method, :address, :dist]
end

defmodule Gen.NaN do
  @moduledoc false
  # NaN diagnostics for the GFI (issue 10 item 4), at no cost per site on the hot path:
  # a top-level GFI call reads its score and weight once (one eval of what the caller needs
  # anyway); only when one is NaN is the same call run again, deterministically (same key),
  # with every site checked as it is scored, and the first NaN site raises Gen.NaNError.
  # One exception: a built-in distribution gives NaN for out-of-range parameters computed from
  # other choices (Gen.Dist), which MH and HMC read as a rejected move; with NaN-free parameters
  # and value such a site is left alone (issue 10 item 6 decides what it should give).

  alias Gen.{Choicemap, Trace}

  @diagnose :gen_nan_diagnose
  @row :gen_nan_row
  @out_of_range :gen_nan_out_of_range

  @doc false
  # After a GFI call: raise Gen.NaNError if any of `values` holds a NaN, naming the site found by `rerun`.
  # Nested calls (inside a gen body) and calls under an Mx transform (traced values) or while
  # Mx.compile traces (placeholders have no values) are left to the caller.
  @spec check!(String.t(), [Mx.t()], (() -> term()), Trace.t() | nil) :: :ok
  def check!(method, values, rerun, prev \\ nil) do
    # under a particle batch (the vectorized GFI's own scalar calls) the vectorized call checks, after it
    if Gen.Handlers.current() == nil and Process.get(:mx_trace_depth, 0) == 0 and
         Gen.Vectorized.batch() == nil and
         not Process.get(:mx_compile_tracing, false) and
         Enum.any?(Mx.eval(values), &nan?/1) do
      diagnose!(method, rerun, prev)
    end

    :ok
  catch
    :out_of_range -> :ok
  end

  defp nan?(%Mx.Array{} = a) do
    if Mx.size(a) == 1, do: Mx.to_number(a) == :nan, else: Mx.to_number(Mx.any(Mx.is_nan(a)))
  end

  defp nan?(_), do: false

  defp diagnose!(method, rerun, prev) do
    Process.put(@diagnose, method)

    try do
      rerun.()
    after
      Process.delete(@diagnose)
    end

    if Process.delete(@out_of_range), do: throw(:out_of_range)

    # No site was NaN: the NaN came from adding infinite log densities of opposite signs.
    raise Gen.NaNError,
      method: method,
      message:
        "#{method}: the score or weight is NaN, but no site's log density or weight is: it is a sum of " <>
          "infinite log densities of opposite signs (+∞ and −∞)#{infinite_sites(prev)}"
  end

  @doc false
  # After a vectorized GFI call (values f64 [n]): on a NaN, the first NaN particle's choices are run
  # through the scalar GFI (row.(i) gives {gen_fn, args, choicemap}), whose diagnosis names the
  # site; the vectorized body ran once on placeholders, where no site can read its values.
  # While Mx.compile traces, the caller checks the replay's values (as for check!/4).
  @spec check_rows!(
          String.t(),
          [Mx.t()],
          (non_neg_integer() -> {term(), [term()], Choicemap.t()})
        ) :: :ok
  def check_rows!(method, values, row) do
    if Gen.Handlers.current() == nil and Process.get(:mx_trace_depth, 0) == 0 and
         Gen.Vectorized.batch() == nil and not Process.get(:mx_compile_tracing, false) do
      case values |> Mx.eval() |> Enum.find_value(&first_nan/1) do
        nil ->
          :ok

        i ->
          {gf, args, cm} = row.(i)
          Process.put(@row, i)

          try do
            diagnose!(
              method,
              fn -> Gen.GenerativeFunction.generate(gf, args, cm, Mx.Random.key(0)) end,
              nil
            )
          after
            Process.delete(@row)
          end
      end
    end

    :ok
  catch
    :out_of_range -> :ok
  end

  defp first_nan(%Mx.Array{} = a),
    do: if(nan?(a), do: a |> Mx.to_flat_list() |> Enum.find_index(&(&1 == :nan)) || 0)

  defp first_nan(_), do: nil

  @doc false
  # Whether a diagnosing re-run is under way.
  @spec diagnosing?() :: boolean()
  def diagnosing?, do: Process.get(@diagnose) != nil

  @doc false
  # At a site being scored: in a diagnosing re-run, raise if its score is NaN.
  @spec site(term(), term(), Mx.t()) :: :ok
  def site(gen_fn, value, score) do
    if Process.get(@diagnose) && nan?(score) do
      if out_of_range?(gen_fn, value),
        do: Process.put(@out_of_range, true),
        else: raise_site!(gen_fn, value, score, "log density")
    end

    :ok
  end

  @doc false
  # At a site whose weight is new score − old score: in a diagnosing re-run, raise if it is NaN (∞ − ∞).
  @spec site_weight(term(), term(), Mx.t(), Mx.t(), Mx.t()) :: :ok
  def site_weight(gen_fn, value, weight, score, old_score) do
    cond do
      !(Process.get(@diagnose) && nan?(weight)) -> :ok
      # A NaN score was judged by site/3 just before.
      nan?(score) -> :ok
      nan?(old_score) and out_of_range?(gen_fn, value) -> Process.put(@out_of_range, true)
      true -> raise_site!(gen_fn, value, weight, "weight")
    end

    :ok
  end

  # A built-in distribution whose NaN comes from out-of-range parameters, not from a NaN input.
  defp out_of_range?(%mod{} = d, value) do
    match?(["Gen", "Dist", _], Module.split(mod)) and mod != Gen.Dist.Custom and
      not has_nan?(Map.from_struct(d)) and not has_nan?(value)
  end

  defp out_of_range?(_gen_fn, _value), do: false

  defp has_nan?(%Mx.Array{} = a), do: Mx.Type.float?(Mx.type(a)) and nan?(a)
  defp has_nan?(%_{} = s), do: has_nan?(Map.from_struct(s))
  defp has_nan?(m) when is_map(m), do: Enum.any?(m, fn {_k, v} -> has_nan?(v) end)
  defp has_nan?(l) when is_list(l), do: Enum.any?(l, &has_nan?/1)
  defp has_nan?(t) when is_tuple(t), do: has_nan?(Tuple.to_list(t))
  defp has_nan?(x), do: x == :nan

  defp raise_site!(gen_fn, value, score, what) do
    method = Process.get(@diagnose)
    state = Gen.Handlers.current()
    path = if state, do: state.prefix ++ state.site, else: []
    where = if path == [], do: "at the root", else: "at #{Choicemap.format_path(path)}"
    particle = particle(score)

    {kind, desc} =
      case gen_fn do
        %Gen.Factor{logp: lp} when what == "log density" ->
          {"factor", " (Gen.factor of #{show(lp, particle)})"}

        %Gen.Factor{logp: lp} ->
          {what, ": Gen.factor of #{show(lp, particle)}"}

        d ->
          {what, ": #{describe(d, particle)} at the value #{show(value, particle)}"}
      end

    message =
      case kind do
        "factor" ->
          "#{method}: the factor #{where} is NaN#{desc}#{in_particle(particle)}"

        "weight" ->
          "#{method}: the weight #{where} is NaN#{in_particle(particle)}, an infinite log density minus itself " <>
            "(the previous trace has probability zero there)#{desc}; start from a trace with a finite score"

        _ ->
          "#{method}: the #{kind} #{where} is NaN#{in_particle(particle)}#{desc}; check the parameters"
      end

    raise Gen.NaNError, method: method, address: path, dist: gen_fn, message: message
  end

  # Under a particle batch: the first particle whose score is NaN; in a scalar re-run of one
  # particle's values (check_rows!/3), that particle.
  defp particle(score) do
    if Gen.Vectorized.batch() != nil and Mx.rank(score) == 1 do
      Enum.find_index(Mx.to_list(score), &(&1 == :nan))
    else
      Process.get(@row)
    end
  end

  defp in_particle(nil), do: ""
  defp in_particle(i), do: " (particle #{i})"

  @doc false
  # A distribution with its parameters' values, for messages.
  def describe(%Gen.Dist.Custom{name: name, params: p}, i),
    do: "Gen.Dist.custom #{name}#{if p, do: " " <> show(p, i), else: ""}"

  def describe(%mod{} = d, i) do
    fields = d |> Map.from_struct() |> Enum.map_join(", ", fn {k, v} -> "#{k}: #{show(v, i)}" end)
    "#{inspect(mod)}(#{fields})"
  end

  def describe(other, _i), do: inspect(other)

  defp show(x, i \\ nil)

  defp show(%Mx.Array{} = a, i) do
    n = Gen.Vectorized.batch()

    cond do
      i != nil and n != nil and Mx.rank(a) >= 1 and elem(Mx.shape(a), 0) == n -> show(a[i], nil)
      Mx.size(a) == 1 -> inspect(Mx.to_number(a))
      Mx.size(a) <= 8 -> inspect(Mx.to_list(a))
      true -> "#{Mx.describe(a)} with #{Mx.to_number(Mx.sum(Mx.is_nan(a)))} NaN"
    end
  end

  defp show(m, i) when is_map(m) and not is_struct(m),
    do: "%{" <> Enum.map_join(m, ", ", fn {k, v} -> "#{inspect(k)} => #{show(v, i)}" end) <> "}"

  defp show(l, i) when is_list(l), do: "[" <> Enum.map_join(l, ", ", &show(&1, i)) <> "]"
  defp show(%_{} = s, i), do: describe(s, i)
  defp show(x, _i), do: inspect(x)

  # Sites whose stored score is infinite in the previous trace of an update or regenerate.
  defp infinite_sites(%Trace{} = prev) do
    case prev
         |> leaves([])
         |> Enum.filter(fn {_p, s} ->
           Mx.size(s) == 1 and Mx.to_number(s) in [:infinity, :neg_infinity]
         end) do
      [] ->
        ""

      sites ->
        "; the previous trace has infinite log densities at " <>
          Enum.map_join(sites, ", ", fn {p, s} -> "#{inspect(p)} (#{show(s)})" end)
    end
  end

  defp infinite_sites(_), do: ""

  defp leaves(%Trace{subtraces: subs} = t, path) when map_size(subs) == 0, do: [{path, t.score}]

  defp leaves(%Trace{subtraces: subs}, path) do
    Enum.flat_map(subs, fn {k, t} ->
      if match?(%Trace{}, t), do: leaves(t, path ++ List.wrap(k)), else: []
    end)
  end
end
