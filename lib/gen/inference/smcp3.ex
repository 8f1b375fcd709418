defmodule Gen.Inference.SMCP3 do
  @moduledoc """
  SMC with probabilistic program proposals (SMCP3, Lew et al. 2023), on the
  GFI alone: each step moves a particle with a forward proposal K, a
  generative function, whose choices are mapped, together with the old
  trace, to the new trace and the choices of a backward proposal L, a
  generative function that scores the way back.

  ## The contract

  At step t, for a particle with trace `old` (`nil` at step 0):

    1. `{u, log_k, _} = Gen.propose(K, [old, t, obs_t])`: K's choices u
       and their log density.
    2. The transform maps `(old, u)` to the model constraints c written
       into the new trace and L's choices v. The default is the identity
       on choice values: c = u (K's addresses are model addresses), and v
       is what the update displaces, the old values of the choices c
       overwrites and of choices the new arguments remove (`Gen.update/5`'s
       discard). With `transform: f`, `f.(old, u, t, obs_t)` returns
       `{c, v}` or `{c, v, log_abs_det_jacobian}` of the bijection
       (old, u) ↦ (new, v) on the continuous values it transforms.
    3. The new trace is `Gen.update(old, args_fn.(t), :unknown_change,
       obs_t ∪ c)` (`Gen.generate/4` at step 0); choices the step adds that
       c does not hold are sampled from the prior by update, and count as
       part of the forward proposal.
    4. `log_l = Gen.assess(L, [new, t, obs_t], v)` (0 when v is empty and
       no L is given).

  The incremental weight is

      log p(new) − log p(old) − log q_update + log_l − log_k + log |det J|

  where `update weight = log p(new) − log p(old) − log q_update`. The
  particles stay properly weighted for the step's posterior whatever K and
  L are, as long as L can propose every v K's moves produce (its support
  covers them) and the transform is a bijection. Within this contract K
  that proposes only the step's new latents and no L is SMC with a custom
  proposal; a K that also changes earlier latents needs an L that proposes
  their old values back.

  Resampling, rejuvenation, keys and the returned value are those of
  `Gen.Inference.smc/5` (it runs on the same loop). Use it through
  `Gen.Inference.smcp3/5`.
  """

  alias Gen.Choicemap
  alias Gen.Inference.SMC

  @doc false
  @spec smcp3(
          Gen.gen_fn(),
          (non_neg_integer() -> [term()]),
          [Choicemap.t() | map() | list()],
          pos_integer(),
          keyword()
        ) :: {[Gen.Trace.t()], Mx.t(), Mx.t()}
  def smcp3(gf, args_fn, observations, n, opts) do
    where = "Gen.Inference.smcp3"
    Mx.Opts.validate!(opts, SMC.run_opts() ++ [:forward, :backward, :transform], where)
    SMC.args_fn!(args_fn, where)
    SMC.observations!(observations, where)
    k = gen_fn!(Keyword.get(opts, :forward), :forward, true)
    l = gen_fn!(Keyword.get(opts, :backward), :backward, false)
    transform = transform!(Keyword.get(opts, :transform))

    init = fn obs, key -> move(gf, nil, args_fn.(0), 0, obs, k, l, transform, key) end
    step = fn tr, t, obs, key -> move(gf, tr, args_fn.(t), t, obs, k, l, transform, key) end

    {traces, lnw, lml} = SMC.run(init, step, observations, n, opts, where)
    {traces, Mx.tensor(lnw, type: :f64), Mx.tensor(lml, type: :f64)}
  end

  defp move(gf, old, args, t, obs, k, l, transform, key) do
    ks = Mx.Random.split(key, 2)
    {u, log_k, _} = Gen.propose(k, [old, t, obs], key: ks[0])
    {c, v, log_det} = apply_transform(transform, old, u, t, obs)
    cm = Choicemap.merge(obs, c)

    {new, w, discard} =
      case old do
        nil ->
          {tr, w} = Gen.generate(gf, args, cm, key: ks[1])
          {tr, w, Choicemap.new()}

        _ ->
          {tr, w, _, discard} = Gen.update(old, args, :unknown_change, cm, key: ks[1])
          {tr, w, discard}
      end

    v = if v == :discard, do: discard, else: v
    log_l = backward_score(l, [new, t, obs], v)
    inc = Mx.to_number(w) + log_l - Mx.to_number(log_k) + log_det
    {Gen.Inference.force(new), inc}
  end

  defp apply_transform(nil, _old, u, _t, _obs), do: {u, :discard, 0.0}

  defp apply_transform(f, old, u, t, obs) do
    case f.(old, u, t, obs) do
      {c, v} ->
        {Choicemap.new(c), Choicemap.new(v), 0.0}

      {c, v, log_det} ->
        {Choicemap.new(c), Choicemap.new(v), to_float(log_det)}

      other ->
        raise ArgumentError,
              "Gen.Inference.smcp3: transform: must return {constraints, backward_choices} or {constraints, backward_choices, log_abs_det_jacobian}, got #{inspect(other)}"
    end
  end

  defp backward_score(nil, _args, v) do
    if Choicemap.empty?(v) do
      0.0
    else
      raise ArgumentError,
            "Gen.Inference.smcp3: the step displaced choices #{inspect(Enum.map(Choicemap.to_list(v), &elem(&1, 0)))} but no backward: proposal was given to score them; pass backward: L, a generative function on [new_trace, t, observations] proposing them"
    end
  end

  defp backward_score(l, args, v) do
    {w, _} = Gen.assess(l, args, v)
    Mx.to_number(w)
  end

  defp to_float(%Mx.Array{} = x), do: Mx.to_number(x)
  defp to_float(x) when is_number(x), do: x * 1.0

  defp to_float(x),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.smcp3: transform: log_abs_det_jacobian must be a number or an Mx scalar, got #{inspect(x)}"
      )

  defp gen_fn!(nil, name, true),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.smcp3: #{name}: is required, a generative function called on [old_trace (nil at step 0), t, observations]"
      )

  defp gen_fn!(nil, _name, false), do: nil

  defp gen_fn!(g, name, _required) do
    if Gen.GenerativeFunction.impl_for(g) in [nil, Gen.GenerativeFunction.Any] do
      raise ArgumentError,
            "Gen.Inference.smcp3: #{name}: must be a generative function (made with gen/defgen), got #{inspect(g)}"
    end

    g
  end

  defp transform!(nil), do: nil
  defp transform!(f) when is_function(f, 4), do: f

  defp transform!(f),
    do:
      raise(
        ArgumentError,
        "Gen.Inference.smcp3: transform: must be a function of (old_trace, forward_choices, t, observations), got #{inspect(f)}"
      )
end
