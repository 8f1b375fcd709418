defmodule Gen.Inference.Gradient do
  @moduledoc """
  Gradient-based MCMC kernels on the selected continuous choices of a trace
  (Gen.jl's `mala` and `hmc`), on the GFI alone: the log joint is
  `Gen.assess/3` on the trace's choices with the selected values replaced,
  differentiated with `Mx.value_and_grad/2`; an accepted move is written
  with `Gen.update/3`. A proposal whose log joint is not finite (a
  parameter computed from the moved values is out of range) or whose
  evaluation raises `Mx.Error` (a covariance that is not positive definite)
  is rejected without being written, and the chain goes on.

  The kernels move the selected choices on their unconstrained scale
  (`Gen.Transform`): each choice through the transform of its
  distribution's support, with the log-Jacobian added to the log joint, so
  a gamma scale or a Dirichlet simplex never steps out of its support.
  `transforms:` (a map from address to a `Gen.Transform` transform)
  overrides the automatic choice, as in `Gen.Inference.NUTS`. The log
  density of the moved coordinates is a `Gen.Inference.Target` (compiled
  once per `hmc/3` and `hmc_warmup/3` call; `mala/3` evaluates it twice,
  uncompiled).

  Use them through `Gen.Inference.mala/3` and `Gen.Inference.hmc/3`.
  """

  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Inference.Target
  import Gen.Inference.Common, only: [positive!: 4, accept: 4]

  @doc """
  The log joint of `trace` and its gradient with respect to the selected
  choices (all floating-point): `{log_joint, gradients}`, the gradients a
  choicemap at the selected addresses.

      iex> import Gen
      iex> m = gen fn -> mu = trace(:mu, Gen.Dist.normal(0.0, 1.0)); trace(:y, Gen.Dist.normal(mu, 1.0)) end
      iex> {t, _} = Gen.generate(m, [], %{mu: 0.5, y: 2.0})
      iex> {lp, g} = Gen.Inference.Gradient.choice_gradients(t, Gen.select(:mu))
      iex> # d/dmu [-mu²/2 - (y - mu)²/2] = -mu + (y - mu) = 1.0
      iex> {Float.round(Mx.to_number(lp), 10) == Float.round(Mx.to_number(Gen.get_score(t)), 10), Mx.to_number(g[:mu])}
      {true, 1.0}
  """
  @spec choice_gradients(Trace.t(), Selection.t()) :: {Mx.t(), Choicemap.t()}
  def choice_gradients(%Trace{} = trace, %Selection{} = sel) do
    paths = Target.selected_paths!(trace, sel, "Gen.Inference.choice_gradients")
    {lp, grads} = value_and_grad(trace, paths, Enum.map(paths, &Gen.get_choices(trace)[&1]))
    {lp, Choicemap.new(Enum.zip(paths, grads))}
  end

  @doc false
  @spec mala(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def mala(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(opts, [:tau, :key, :transforms], "Gen.Inference.mala")
    tau = positive!(opts, :tau, nil, "Gen.Inference.mala")
    {k_move, k_accept} = Gen.Inference.two_keys(opts)
    # Two evaluations: fewer than tracing costs (about four on eight schools, bench/target.exs).
    target = target!(trace, sel, opts, "mala", false)
    q = start(target)
    {lp, g} = Target.value_and_grad_array(target, q)
    sd = :math.sqrt(2 * tau)

    # Langevin proposal q' ~ N(q + τ∇log p(q), 2τ I) on the unconstrained scale.
    new_q = Mx.add(Mx.add(q, Mx.multiply(g, tau)), Mx.multiply(noise(target, k_move), sd))
    Mx.eval(new_q)
    {lp2, new_g} = proposal_value_and_grad(target, new_q)
    fwd = log_q(new_q, q, g, tau, sd)
    bwd = log_q(q, new_q, new_g, tau, sd)
    move(trace, target, new_q, Mx.add(Mx.subtract(lp2, lp), Mx.subtract(bwd, fwd)), k_accept)
  end

  @doc false
  @spec hmc(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def hmc(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(opts, [:step_size, :n_leapfrog, :key, :transforms], "Gen.Inference.hmc")
    eps = positive!(opts, :step_size, nil, "Gen.Inference.hmc")
    target = target!(trace, sel, opts, "hmc")
    {k_move, k_accept} = Gen.Inference.two_keys(opts)

    {new_q, log_alpha} =
      hmc_proposal(target, start(target), eps, n_leapfrog!(opts, "hmc"), k_move)

    move(trace, target, new_q, log_alpha, k_accept)
  end

  @doc false
  @spec hmc_warmup(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), float(), [map()]}
  def hmc_warmup(%Trace{} = trace, %Selection{} = sel, opts) do
    fun = "hmc_warmup"

    Mx.Opts.validate!(
      opts,
      [:warmup, :n_leapfrog, :step_size, :target_accept, :key, :transforms],
      "Gen.Inference.hmc_warmup"
    )

    warmup = Keyword.get(opts, :warmup, 500)

    unless is_integer(warmup) and warmup >= 1 do
      raise ArgumentError,
            "Gen.Inference.#{fun}: warmup: must be a positive integer, got #{inspect(warmup)}"
    end

    n = n_leapfrog!(opts, fun)
    eps0 = Keyword.get(opts, :step_size, 1.0)

    unless is_number(eps0) and eps0 > 0 do
      raise ArgumentError,
            "Gen.Inference.#{fun}: step_size: the initial step must be a positive number, got #{inspect(eps0)}"
    end

    target = target!(trace, sel, opts, fun)
    key = Keyword.get_lazy(opts, :key, &Gen.next_key/0)
    da = Gen.Inference.Adapt.dual_averaging(eps0, delta: Keyword.get(opts, :target_accept, 0.8))
    q0 = start(target)
    eps = init_step_size(target, q0, eps0 * 1.0, Mx.Random.fold_in(key, -1))
    da = %{da | x: :math.log(eps)}

    # The chain runs on the unconstrained values; the trace is written once, at the end.
    {q, da, stats} =
      Enum.reduce(0..(warmup - 1), {q0, da, []}, fn i, {q, da, acc} ->
        eps = Gen.Inference.Adapt.step_size(da)
        {k_move, k_accept} = Gen.Inference.two_keys(key: Mx.Random.fold_in(key, i))
        {new_q, log_alpha} = hmc_proposal(target, q, eps, n, k_move)
        {_, acc?} = accept(trace, trace, log_alpha, k_accept)
        alpha = accept_prob(log_alpha)
        q = if acc?, do: new_q, else: q

        {q, Gen.Inference.Adapt.learn_step_size(da, alpha),
         [%{step_size: eps, accept_prob: alpha} | acc]}
      end)

    {Target.write(target, trace, q), Gen.Inference.Adapt.final_step_size(da), Enum.reverse(stats)}
  end

  # min(1, exp(log α)); 0 for a non-finite Hamiltonian.
  defp accept_prob(log_alpha) do
    case Mx.to_number(log_alpha) do
      x when is_float(x) -> min(1.0, :math.exp(min(x, 0.0)))
      :infinity -> 1.0
      _ -> 0.0
    end
  end

  # One HMC proposal from `q`: {new q, log α}, α the Metropolis ratio of exp(−H) at the ends.
  defp hmc_proposal(target, q, eps, n, key) do
    p = noise(target, key)
    {lp, new_q, lp2, new_p} = leapfrogs(target, q, p, eps, n)
    {new_q, Mx.add(Mx.subtract(lp2, lp), Mx.subtract(kinetic(p), kinetic(new_p)))}
  end

  # Accepts or rejects the move to `new_q`; only an accepted move is written into the trace.
  defp move(trace, target, new_q, log_alpha, key) do
    {_, acc?} = accept(trace, trace, log_alpha, key)
    if acc?, do: {Target.write(target, trace, new_q), true}, else: {trace, false}
  end

  # Leapfrog with unit mass: half step in p, then alternating full steps, closing with a half
  # step. Returns {log p at the start, new q, log p at the end, new p}.
  defp leapfrogs(target, q, p, eps, n) do
    {lp, g} = Target.value_and_grad_array(target, q)

    {new_q, new_p, _g, lp2} =
      Enum.reduce_while(1..n, {q, p, g, lp}, fn _, {x, p, g, _lp} ->
        p_half = axpy(p, g, eps / 2)
        x2 = axpy(x, p_half, eps)
        Mx.eval(x2)
        {lp2, g2} = proposal_value_and_grad(target, x2)
        p2 = axpy(p_half, g2, eps / 2)
        Mx.eval(p2)
        # a step out of the density's domain ends the trajectory: log p = -Inf rejects the move
        if is_float(Mx.to_number(lp2)),
          do: {:cont, {x2, p2, g2, lp2}},
          else: {:halt, {x2, p2, g2, lp2}}
      end)

    {lp, new_q, lp2, new_p}
  end

  # The log joint and gradient at a proposal; where its evaluation raised Mx.Error (a covariance
  # no longer positive definite, say) the log joint is -Inf, so the move is rejected, as in Stan.
  defp proposal_value_and_grad(target, q) do
    case Gen.Inference.Common.at_proposal(fn -> Target.value_and_grad_array(target, q) end) do
      {:ok, vg} -> vg
      :rejected -> {Mx.tensor(:neg_infinity, type: :f64), Mx.multiply(q, 0.0)}
    end
  end

  # Stan's heuristic for the first step size: double (or halve) ε until one leapfrog's acceptance crosses 0.8.
  defp init_step_size(target, q, eps, key) do
    log08 = :math.log(0.8)

    dh = fn eps, i ->
      {_new_q, log_alpha} = hmc_proposal(target, q, eps, 1, Mx.Random.fold_in(key, i))

      case Mx.to_number(log_alpha) do
        x when is_float(x) -> x
        :infinity -> 1.0e300
        # Erlang orders atoms above numbers: a non-finite energy error must stay a float.
        _ -> -1.0e300
      end
    end

    dir = if dh.(eps, 0) > log08, do: 1, else: -1

    Enum.reduce_while(1..2000, eps, fn i, eps ->
      d = dh.(eps, i)

      cond do
        dir == 1 and not (d > log08) ->
          {:halt, eps}

        dir == -1 and not (d < log08) ->
          {:halt, eps}

        eps > 1.0e7 or eps < 1.0e-300 ->
          raise ArgumentError,
                "Gen.Inference.hmc_warmup: the step-size search left [1e-300, 1e7]; check that the log density is proper and finite at the trace"

        dir == 1 ->
          {:cont, eps * 2}

        true ->
          {:cont, eps / 2}
      end
    end)
  end

  defp n_leapfrog!(opts, fun) do
    n = Keyword.get(opts, :n_leapfrog, 10)

    unless is_integer(n) and n >= 1 do
      raise ArgumentError,
            "Gen.Inference.#{fun}: n_leapfrog: must be a positive integer, got #{inspect(n)}"
    end

    n
  end

  # The selected choices on their unconstrained scale (`transforms:` overrides the automatic
  # transforms), compiled unless the caller evaluates it too few times to repay tracing.
  defp target!(trace, sel, opts, fun, compile? \\ true),
    do:
      Target.new(trace, sel,
        transforms: Keyword.get(opts, :transforms, %{}),
        compile: compile?,
        caller: "Gen.Inference.#{fun}"
      )

  defp start(target), do: Mx.tensor(target.q0, type: :f64)

  # The log joint at `xs` (the selected values) and its gradient, through assess.
  defp value_and_grad(%Trace{} = trace, paths, xs) do
    gf = Gen.get_gen_fn(trace)
    args = Gen.get_args(trace)
    base = Gen.get_choices(trace)

    f = fn vals ->
      cm =
        Enum.zip(paths, vals) |> Enum.reduce(base, fn {p, v}, acc -> Choicemap.put(acc, p, v) end)

      {w, _retval} = Gen.assess(gf, args, cm)
      w
    end

    {lp, gs} = Mx.value_and_grad(f).(xs)
    Mx.eval([lp | gs])
    {lp, gs}
  end

  defp split(key, 1), do: [key]

  defp split(key, n),
    do: key |> Mx.Random.split(n) |> then(fn ks -> for i <- 0..(n - 1), do: ks[i] end)

  # Standard normal noise on the flat vector, drawn block by block (one key each, as the kernels
  # drew it per selected choice).
  defp noise(target, key) do
    keys = split(key, length(target.blocks))

    target
    |> Target.join(
      Enum.zip_with(target.blocks, keys, &Mx.Random.normal(&2, shape: &1.u_shape, type: :f64))
    )
  end

  defp axpy(y, x, a), do: Mx.add(y, Mx.multiply(x, a))

  # log N(to; from + τ·g, sd²·I) summed over every coordinate.
  defp log_q(to, from, g, tau, sd) do
    z = Mx.divide(Mx.subtract(to, Mx.add(from, Mx.multiply(g, tau))), sd)

    Mx.subtract(
      Mx.multiply(Mx.sum(Mx.multiply(z, z)), -0.5),
      Mx.size(to) * (:math.log(sd) + 0.5 * :math.log(2 * :math.pi()))
    )
  end

  defp kinetic(p), do: Mx.multiply(Mx.sum(Mx.multiply(p, p)), 0.5)
end
