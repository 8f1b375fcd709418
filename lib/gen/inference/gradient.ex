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
  density of the moved coordinates is a `Gen.Inference.Target`, compiled
  (and cached: a chain of these kernels on one model and its data traces
  it once, see `Gen.Inference.Target.cache_stats/0`).

  The transitions and `hmc_warmup/3`'s step-size heuristic and dual
  averaging are those of `Gen.Inference.NUTS`'s sampler, run in C
  (`c_src/sampler.c`) with a unit metric: one HMC or MALA transition is a
  run of that sampler with no warmup and one draw, from the trace's values,
  with the given key; a model that reads a selected value (a dynamic
  target) answers the sampler's gradient requests from this process. An
  accepted move is written with `Gen.update/3`; `accepted?` is whether the
  chain moved (a rejected proposal leaves its point unchanged bit for bit).

  Use them through `Gen.Inference.mala/3` and `Gen.Inference.hmc/3`.
  """

  alias Gen.{Choicemap, Selection, Trace}
  alias Gen.Inference.Target
  import Gen.Inference.Common, only: [positive!: 4]

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

    # The C sampler's MALA: one leapfrog of ε from a fresh momentum proposes q + (ε²/2)∇ + εz.
    transition(trace, sel, opts, "mala", algorithm: :mala, step_size: :math.sqrt(2 * tau))
  end

  @doc false
  @spec hmc(Trace.t(), Selection.t(), keyword()) :: {Trace.t(), boolean()}
  def hmc(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(opts, [:step_size, :n_leapfrog, :key, :transforms], "Gen.Inference.hmc")
    eps = positive!(opts, :step_size, nil, "Gen.Inference.hmc")
    n = n_leapfrog!(opts, "hmc")
    transition(trace, sel, opts, "hmc", algorithm: :hmc, step_size: eps, n_leapfrog: n)
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

    delta = Keyword.get(opts, :target_accept, 0.8)

    unless is_number(delta) and delta > 0 and delta < 1 do
      raise ArgumentError,
            "Gen.Inference.#{fun}: target_accept: must lie in (0, 1), got #{inspect(delta)}"
    end

    # The C sampler's warmup alone: Stan's step-size heuristic, then dual averaging with a unit
    # metric; the chain runs on the unconstrained values and the trace is written once, at the end.
    target = target!(trace, sel, opts, fun)

    r =
      run(target, opts, fun,
        algorithm: :hmc,
        warmup: warmup,
        samples: 0,
        n_leapfrog: n,
        step_size: eps0,
        target_accept: delta,
        adapt_metric: false
      )

    stats = Enum.map(r.warmup_stats, &%{step_size: &1.step_size, accept_prob: &1.accept_stat})
    {Target.write(target, trace, r.last), r.step_size, stats}
  end

  # One transition of the C sampler from the trace's selected values, with a unit metric and no
  # warmup: {trace, accepted?}. A rejected proposal leaves the chain's point as it was, bit for
  # bit, and only a move is written into the trace.
  defp transition(trace, sel, opts, fun, sampler_opts) do
    target = target!(trace, sel, opts, fun)
    r = run(target, opts, fun, [warmup: 0, samples: 1] ++ sampler_opts)

    if pack(r.last) == pack(target.q0),
      do: {trace, false},
      else: {Target.write(target, trace, r.last), true}
  end

  # The run on the target (Gen.Inference.Sampler: its tape, or this process's gradients for a
  # model that reads a selected value); errors name the kernel.
  defp run(target, opts, fun, sampler_opts) do
    Gen.Inference.Sampler.run(
      Target.sampler_target(target),
      [key: Keyword.get_lazy(opts, :key, &Gen.next_key/0)] ++ sampler_opts
    )
  rescue
    e in [ArgumentError, Mx.Error] ->
      reraise e.__struct__,
              [message: "Gen.Inference.#{fun}: " <> e.message],
              __STACKTRACE__
  end

  defp pack(xs), do: for(x <- xs, into: <<>>, do: <<x::float-64-native>>)

  defp n_leapfrog!(opts, fun) do
    n = Keyword.get(opts, :n_leapfrog, 10)

    unless is_integer(n) and n >= 1 do
      raise ArgumentError,
            "Gen.Inference.#{fun}: n_leapfrog: must be a positive integer, got #{inspect(n)}"
    end

    n
  end

  # The selected choices on their unconstrained scale (`transforms:` overrides the automatic
  # transforms), compiled: from the cache of compiled targets when the model, its data and the
  # selection repeat, as along a chain of these kernels.
  defp target!(trace, sel, opts, fun),
    do:
      Target.new(trace, sel,
        transforms: Keyword.get(opts, :transforms, %{}),
        caller: "Gen.Inference.#{fun}"
      )

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
end
