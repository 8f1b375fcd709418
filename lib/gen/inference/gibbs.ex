defmodule Gen.Inference.Gibbs do
  @moduledoc """
  Gibbs sampling of one discrete choice with an enumerable support, on the
  GFI alone: every candidate value `v` is written with `Gen.update/3`, whose
  weight is log p(trace with v) − log p(trace), and one candidate is drawn
  with probability proportional to `exp(weight)`: an exact draw from the
  choice's full conditional, so the move is always accepted.

  The candidates (`values:`) must cover the choice's support: every step
  checks, through `Gen.project/2` of each candidate's trace, that their
  prior probabilities given the choice's parents sum to 1 within `1.0e-5`
  (room for the rounding of f32 parameters), and raises otherwise, naming
  the mass found: a value of the support left out (bernoulli given `[0]`,
  a 3-way categorical given `0..1`), a value listed twice, or a continuous
  choice (a grid of densities is no support). This one check serves every
  finite distribution (bernoulli, categorical, binomial, discrete_uniform,
  ...) and user-defined ones; for an unbounded support (poisson, geometric)
  list enough values that the tail left out is below `1.0e-5`. Values
  outside the support get weight `-Inf` and are never drawn. Use it through
  `Gen.Inference.gibbs/3` or `Gen.Inference.Kernel.gibbs/2`.
  """

  alias Gen.{Choicemap, Trace}

  @options [:values, :key]
  @mass_tol 1.0e-5

  @doc false
  # The options, also checked by the kernel constructor in Gen.Inference.Kernel.
  @spec options() :: [atom()]
  def options, do: @options

  @doc false
  @spec gibbs(Trace.t(), Choicemap.path(), keyword()) :: {Trace.t(), boolean()}
  def gibbs(%Trace{} = trace, address, opts) when is_list(opts) do
    Mx.Opts.validate!(opts, @options, "Gen.Inference.gibbs")
    path = Choicemap.path!(address)
    current = current!(trace, path)
    values = values!(opts, current, path)
    key = Keyword.get(opts, :key) || Gen.next_key()

    # The current value keeps the trace (weight 0) without an update.
    now = if Mx.shape(current) == {}, do: Mx.to_number(current), else: :not_a_scalar

    moves =
      Enum.map(values, fn v ->
        if (is_number(v) or is_boolean(v)) and v == now do
          {trace, 0.0}
        else
          {new, w, _, _} = Gen.update(trace, Choicemap.new([{path, v}]))
          {new, w}
        end
      end)

    sel = Gen.Selection.new([path])
    priors = Enum.map(moves, fn {t, _w} -> Gen.project(t, sel) end)
    Mx.eval(priors ++ (moves |> Enum.map(&elem(&1, 1)) |> Enum.filter(&is_struct(&1, Mx.Array))))
    logits = moves |> Enum.map(fn {_t, w} -> if is_float(w), do: w, else: Mx.to_number(w) end) |> logits()

    if Enum.all?(logits, &(&1 == :neg_infinity)) do
      raise ArgumentError,
            "Gen.Inference.gibbs: every value in values: has probability zero at #{Choicemap.format_path(path)}; " <>
              "give the values of the choice's support, got #{inspect(values)}"
    end

    covers_support!(priors, values, current, path)
    u = key |> Mx.Random.uniform(type: :f64) |> Mx.to_number()
    i = pick(logits, u)
    {new, _w} = Enum.at(moves, i)
    {Gen.Inference.force(new), true}
  end

  def gibbs(trace, _address, opts) do
    raise ArgumentError,
          "Gen.Inference.gibbs: expected a Gen.Trace and a keyword list of options, got #{inspect(trace)} and #{inspect(opts)}"
  end

  @doc """
  Draws index i with probability exp(logits[i]) / Σ exp(logits) from a
  uniform `u` in [0, 1), by inverting the cumulative sum (numbers, with
  `:neg_infinity` for zero probability).

      iex> Gen.Inference.Gibbs.pick([:math.log(0.25), :math.log(0.75)], 0.3)
      1
      iex> Gen.Inference.Gibbs.pick([0.0, :neg_infinity, 0.0], 0.49)
      0
  """
  @spec pick([float() | :neg_infinity], float()) :: non_neg_integer()
  def pick(logits, u) do
    finite = Enum.reject(logits, &(&1 == :neg_infinity))
    top = Enum.max(finite)
    ps = Enum.map(logits, fn l -> if l == :neg_infinity, do: 0.0, else: :math.exp(l - top) end)
    target = u * Enum.sum(ps)

    # The last index of positive probability catches rounding at the top of the sum.
    last = Enum.reduce(Enum.with_index(ps), 0, fn {p, j}, acc -> if p > 0, do: j, else: acc end)

    Enum.zip(ps, Enum.scan(ps, &(&1 + &2)))
    |> Enum.with_index()
    |> Enum.find_value(last, fn {{p, c}, j} -> if target < c and p > 0, do: j end)
  end

  defp current!(trace, path) do
    case Choicemap.fetch(Gen.get_choices(trace), path) do
      {:ok, %Mx.Array{} = v} ->
        v

      _ ->
        raise ArgumentError,
              "Gen.Inference.gibbs: the trace has no choice at #{Choicemap.format_path(path)}; give the address of a discrete choice"
    end
  end

  defp values!(opts, current, path) do
    case Keyword.get(opts, :values) do
      nil ->
        if Mx.type(current) == :bool and Mx.shape(current) == {} do
          [false, true]
        else
          raise ArgumentError,
                "Gen.Inference.gibbs: values: is required for the #{Mx.describe(current)} choice at " <>
                  "#{Choicemap.format_path(path)} (only a boolean defaults to [false, true]); give its support, e.g. values: 0..9"
        end

      vs ->
        list = if is_list(vs), do: vs, else: Enum.to_list(vs)

        if list == [] or Enum.any?(list, &(not valid_value?(&1))) do
          raise ArgumentError,
                "Gen.Inference.gibbs: values: must be a non-empty enumerable of numbers, booleans or Mx arrays, got #{inspect(vs)}"
        end

        list
    end
  rescue
    Protocol.UndefinedError ->
      reraise ArgumentError,
              "Gen.Inference.gibbs: values: must be an enumerable of candidate values, got #{inspect(Keyword.get(opts, :values))}",
              __STACKTRACE__
  end

  # The candidates' prior probabilities (log, from project) must sum to 1: a value of the
  # support left out, or listed twice, would change the conditional without a sign.
  defp covers_support!(log_priors, values, current, path) do
    mass = log_priors |> Enum.map(&Mx.to_number/1) |> Enum.map(&if(is_float(&1), do: :math.exp(&1), else: 0.0)) |> Enum.sum()

    if abs(mass - 1.0) > @mass_tol do
      fix =
        cond do
          Mx.Type.float?(Mx.type(current)) -> "it is a continuous #{Mx.describe(current)} choice, which has no finite support: use MH or a gradient kernel"
          mass > 1.0 -> "a value is listed twice"
          true -> "give every value of its support (for an unbounded one, enough that the tail left out is below #{@mass_tol})"
        end

      raise ArgumentError,
            "Gen.Inference.gibbs: values: #{inspect(values)} carry prior probability #{mass} of the choice at " <>
              "#{Choicemap.format_path(path)}, not 1 (within #{@mass_tol}); #{fix}"
    end
  end

  defp valid_value?(v), do: is_number(v) or is_boolean(v) or match?(%Mx.Array{}, v)

  # NaN weights (an update outside a parameter's domain) count as probability zero; from a
  # trace of probability zero, the candidates of positive probability (+Inf) share the draw.
  defp logits(ws) do
    if Enum.member?(ws, :infinity),
      do: Enum.map(ws, &if(&1 == :infinity, do: 0.0, else: :neg_infinity)),
      else: Enum.map(ws, &if(is_float(&1), do: &1, else: :neg_infinity))
  end
end
