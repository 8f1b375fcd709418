defmodule Gen.Inference.Involutive do
  @moduledoc """
  Involutive MCMC (Gen.jl's `mh(trace, proposal, proposal_args,
  involution)`; Cusumano-Towner, Lew & Mansinghka 2020), on the GFI alone.

  A step draws auxiliary choices `a` from the proposal `q` on `[trace |
  proposal_args]` (`Gen.propose/3`), maps the model's choices `m` and `a`
  through the involution to `(m', a')`, writes `m'` with `Gen.update/3` and
  scores `a'` under `q` on the new trace (`Gen.assess/3`). It is accepted
  with probability min(1, α),

      log α = [log p(m') − log p(m)] + log q(a'; m') − log q(a; m) + log |det J|,

  where J is the Jacobian of the involution on the continuous values,
  computed by reverse-mode autodiff (`Mx.vjp/3`, one row per output value)
  and `Mx.Linalg.slogdet/1`.

  ## The involution's contract

  An involution is an Elixir function

      fn model_choices, aux_choices, proposal_args -> {model_changes, new_aux_choices} end

  `model_choices` is the trace's `Gen.Choicemap` (read values with
  `m[:x]` or `Gen.Choicemap.get/2`), `aux_choices` the proposal's choicemap,
  `proposal_args` the list given to the kernel. It returns the model
  addresses to write, with their new values (every other model choice keeps
  its value), and the whole auxiliary choicemap of the reverse move, each as
  a choicemap, a map or a list of `{path, value}` pairs.

  It must:

    * be an involution: applied to its own result (the new model choices
      and `new_aux_choices`) it gives back the original values. Pass
      `check: true` to verify this at every step (it raises
      `ArgumentError` naming the address that does not come back);
    * compute continuous outputs from its inputs with `Mx` ops, so that
      autodiff sees the dependence (a value converted to an Elixir number
      and back counts as a constant);
    * keep the dimension: the continuous values written to the model must
      be at addresses the trace has, and their count plus that of the new
      auxiliary choices must equal the count of the old values at those
      addresses plus the old auxiliary choices. Split/merge moves that add
      or remove choices are not supported.

  Discrete values take part in the map but not in the Jacobian (they are
  constants of the continuous part).

  Use it through `Gen.Inference.involutive_mh/5` or
  `Gen.Inference.Kernel.involutive_mh/4`.
  """

  alias Gen.{Choicemap, Trace}

  @options [:check, :key]

  @doc false
  # The options, also checked by the kernel constructor in Gen.Inference.Kernel.
  @spec options() :: [atom()]
  def options, do: @options

  @doc false
  @spec involutive_mh(Trace.t(), Gen.gen_fn(), [term()], function(), keyword()) :: {Trace.t(), boolean()}
  def involutive_mh(%Trace{} = trace, q, q_args, involution, opts)
      when is_list(q_args) and is_function(involution, 3) and is_list(opts) do
    Mx.Opts.validate!(opts, @options, "Gen.Inference.involutive_mh")
    {k_move, k_accept} = Gen.Inference.two_keys(opts)
    model = Gen.get_choices(trace)
    {aux, fwd_score, _} = Gen.propose(q, [trace | q_args], key: k_move)
    {changes, new_aux} = apply!(involution, model, aux, q_args)
    # The Jacobian first: it checks the involution keeps the model's addresses and the dimension.
    log_det = jacobian_term(involution, model, aux, q_args, changes, new_aux)
    {new, w, _, _} = Gen.update(trace, changes)
    {bwd_score, _} = Gen.assess(q, [new | q_args], new_aux)

    if Keyword.get(opts, :check, false),
      do: check!(involution, model, aux, Gen.get_choices(new), new_aux, changes, q_args)

    log_alpha = w |> Mx.add(Mx.subtract(bwd_score, fwd_score)) |> Mx.add(log_det)
    Gen.Inference.Common.accept(trace, new, log_alpha, k_accept)
  end

  def involutive_mh(_trace, _q, q_args, involution, opts) do
    raise ArgumentError,
          "Gen.Inference.involutive_mh: expected a Gen.Trace, a proposal, its argument list, an involution " <>
            "fn model_choices, aux_choices, proposal_args -> {model_changes, new_aux} end and options; " <>
            "got proposal args #{inspect(q_args)}, involution #{inspect(involution)}, options #{inspect(opts)}"
  end

  @doc """
  log |det J| of `involution` (see the contract above) at `model_choices`
  and `aux_choices`: J is the Jacobian of the map from the continuous
  values it reads (the auxiliary choices and the model choices it writes)
  to the continuous values it returns. An f64 scalar.

  The scale move `(x, u) -> (x·u, 1/u)` has |det J| = |u · (−1/u²)| = 1/|u|:

      iex> inv = fn m, a, _ -> {%{x: Mx.multiply(m[:x], a[:u])}, %{u: Mx.reciprocal(a[:u])}} end
      iex> lad = Gen.Inference.Involutive.log_abs_det_jacobian(inv, Gen.choicemap(%{x: 3.0}), Gen.choicemap(%{u: 2.0}), [])
      iex> Float.round(Mx.to_number(lad), 12) == Float.round(-:math.log(2.0), 12)
      true
  """
  @spec log_abs_det_jacobian(function(), Choicemap.t(), Choicemap.t(), [term()]) :: Mx.t()
  def log_abs_det_jacobian(involution, %Choicemap{} = model, %Choicemap{} = aux, q_args)
      when is_function(involution, 3) do
    {changes, new_aux} = apply!(involution, model, aux, q_args)
    jacobian_term(involution, model, aux, q_args, changes, new_aux)
  end

  defp jacobian_term(involution, model, aux, q_args, changes, new_aux) do
    model_paths = for {p, v} <- Choicemap.to_list(changes), float?(v), do: p
    aux_paths = for {p, v} <- Choicemap.to_list(aux), float?(v), do: p

    old =
      Enum.map(model_paths, fn p ->
        case Choicemap.fetch(model, p) do
          {:ok, %Mx.Array{} = v} ->
            if float?(v), do: v, else: not_float!(p, v)

          _ ->
            raise ArgumentError,
                  "Gen.Inference.involutive_mh: the involution writes #{Choicemap.format_path(p)}, which the trace does not have; " <>
                    "involutions must keep the model's addresses (split/merge moves are not supported)"
        end
      end)

    inputs = old ++ Enum.map(aux_paths, &Choicemap.get(aux, &1))
    n_in = inputs |> Enum.map(&Mx.size/1) |> Enum.sum()
    n_out = outputs(changes, new_aux, model_paths) |> Enum.map(&Mx.size/1) |> Enum.sum()

    if n_in != n_out do
      raise ArgumentError,
            "Gen.Inference.involutive_mh: the involution maps #{n_in} continuous values to #{n_out}; " <>
              "an involution keeps the dimension (the model values it writes plus the auxiliary choices)"
    end

    if n_in == 0, do: Mx.tensor(0.0, type: :f64), else: log_det(involution, model, aux, q_args, model_paths, aux_paths, inputs)
  end

  # Row i of J is the pull-back of the i-th unit cotangent through the flattened map.
  defp log_det(involution, model, aux, q_args, model_paths, aux_paths, inputs) do
    n_model = length(model_paths)

    f = fn vals ->
      {mv, av} = Enum.split(vals, n_model)
      m = put_all(model, model_paths, mv)
      a = put_all(aux, aux_paths, av)
      {changes, new_aux} = apply!(involution, m, a, q_args)
      outputs(changes, new_aux, model_paths) |> flat()
    end

    n = inputs |> Enum.map(&Mx.size/1) |> Enum.sum()

    rows =
      for i <- 0..(n - 1) do
        cot = Mx.tensor(for(j <- 0..(n - 1), do: if(i == j, do: 1.0, else: 0.0)), type: :f64)
        {_y, [grads]} = Mx.vjp(f, [inputs], cot)
        flat(grads)
      end

    {_sign, lad} = rows |> Mx.stack() |> Mx.Linalg.slogdet()
    Mx.eval(lad)
    lad
  end

  defp outputs(changes, new_aux, model_paths) do
    Enum.map(model_paths, &Choicemap.get(changes, &1)) ++
      for({_p, v} <- Choicemap.to_list(new_aux), float?(v), do: v)
  end

  defp flat(arrays),
    do: arrays |> Enum.map(&(&1 |> Mx.as_type(:f64) |> Mx.reshape({Mx.size(&1)}))) |> Mx.concatenate()

  defp put_all(cm, paths, vals),
    do: Enum.zip(paths, vals) |> Enum.reduce(cm, fn {p, v}, acc -> Choicemap.put(acc, p, v) end)

  defp apply!(involution, model, aux, q_args) do
    case involution.(model, aux, q_args) do
      {changes, new_aux} ->
        {choicemap!(changes, "model changes"), choicemap!(new_aux, "new auxiliary choices")}

      other ->
        raise ArgumentError,
              "Gen.Inference.involutive_mh: the involution must return {model_changes, new_aux_choices}, got #{inspect(other)}"
    end
  end

  defp choicemap!(%Choicemap{} = cm, _what), do: cm
  defp choicemap!(x, _what) when (is_map(x) and not is_struct(x)) or is_list(x), do: Choicemap.new(x)

  defp choicemap!(other, what) do
    raise ArgumentError,
          "Gen.Inference.involutive_mh: the involution's #{what} must be a choicemap, a map or a list of {path, value}, got #{inspect(other)}"
  end

  # Applies the involution to its own result and compares with where it started.
  defp check!(involution, model, aux, new_model, new_aux, changes, q_args) do
    {changes2, aux2} = apply!(involution, new_model, new_aux, q_args)
    pairs = Choicemap.to_list(changes2)
    back = put_all(new_model, Enum.map(pairs, &elem(&1, 0)), Enum.map(pairs, &elem(&1, 1)))
    written = Enum.uniq(Enum.map(Choicemap.to_list(changes) ++ pairs, &elem(&1, 0)))
    for p <- written, do: same!(p, Choicemap.get(model, p), Choicemap.get(back, p))

    aux_paths = aux |> Choicemap.to_list() |> Enum.map(&elem(&1, 0)) |> Enum.sort()
    aux2_paths = aux2 |> Choicemap.to_list() |> Enum.map(&elem(&1, 0)) |> Enum.sort()

    if aux_paths != aux2_paths do
      raise ArgumentError,
            "Gen.Inference.involutive_mh: the involution is not an involution (check: true): applied twice it gives " <>
              "auxiliary choices at #{inspect(aux2_paths)}, the proposal made #{inspect(aux_paths)}"
    end

    for p <- aux_paths, do: same!(p, Choicemap.get(aux, p), Choicemap.get(aux2, p))
    :ok
  end

  defp same!(p, was, now) do
    unless same?(was, now) do
      raise ArgumentError,
            "Gen.Inference.involutive_mh: the involution is not an involution (check: true): applied twice it takes " <>
              "#{Choicemap.format_path(p)} from #{show(was)} to #{show(now)}; it must give back the original values when applied to its own result"
    end
  end

  defp same?(%Mx.Array{} = a, %Mx.Array{} = b) do
    Mx.shape(a) == Mx.shape(b) and
      Enum.zip(Mx.to_flat_list(a), Mx.to_flat_list(b))
      |> Enum.all?(fn
        {x, y} when is_float(x) and is_float(y) -> abs(x - y) <= 1.0e-9 * max(1.0, abs(x))
        {x, y} -> x == y
      end)
  end

  defp same?(a, b), do: a == b

  defp show(%Mx.Array{} = a), do: inspect(Mx.to_list(a))
  defp show(x), do: inspect(x)

  defp float?(%Mx.Array{} = v), do: Mx.Type.float?(Mx.type(v))
  defp float?(_), do: false

  defp not_float!(p, v) do
    raise ArgumentError,
          "Gen.Inference.involutive_mh: the involution writes a floating-point value at #{Choicemap.format_path(p)}, " <>
            "where the trace holds #{Mx.describe(v)}; keep each address's type"
  end
end
