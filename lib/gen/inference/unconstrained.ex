defmodule Gen.Inference.Unconstrained do
  @moduledoc false
  # The selected continuous choices of a trace on the unconstrained scale of `Gen.Transform`,
  # shared by NUTS, HMC, MALA, MAP and ADVI. A selected leaf of the choicemap handed to
  # `Gen.assess/3` holds a `Site`; the distribution that scores it (the `Any` implementation of
  # `Gen.GenerativeFunction`) calls `assess_site/2`, which takes the transform from the
  # distribution's support at its current parameters, so bounds computed from other choices
  # follow them. A pass (in the process dictionary, like the handler state) records what the
  # sites saw: the starting unconstrained values (`:probe`) or the constrained ones (`:constrain`).

  alias Gen.{Choicemap, Transform}

  defmodule Site do
    @moduledoc false
    # value: x in a :probe pass, u in a :constrain pass; override: a transforms: entry or nil.
    defstruct [:path, :value, :mode, :override, :type]
  end

  @pass :gen_unconstrained_pass

  @doc false
  # The plan for `trace`'s choices selected by `sel`: one site per selected choice (in address
  # order) with its transform (at the trace's values), shapes and starting unconstrained value.
  @spec plan!(Gen.Trace.t(), Gen.Selection.t(), map(), String.t(), String.t()) :: map()
  def plan!(trace, sel, overrides, where, fun) do
    overrides = overrides!(overrides, where)
    paths = Gen.Inference.Gradient.selected_paths!(trace, sel, fun)

    case Enum.reject(Map.keys(overrides), &(&1 in paths)) do
      [] ->
        :ok

      extra ->
        raise ArgumentError,
              "#{where}: transforms: #{Enum.map_join(extra, ", ", &Choicemap.format_path/1)} is not a selected continuous choice; give transforms only for selected choices"
    end

    choices = Gen.get_choices(trace)

    sites =
      Enum.map(paths, fn p ->
        %Site{
          path: p,
          value: choices[p],
          mode: :probe,
          override: Map.get(overrides, p),
          type: Mx.type(choices[p])
        }
      end)

    plan = %{trace: trace, choices: choices, sites: sites, where: where}
    {_w, seen} = run(plan, sites, true)
    check_inside!(sites, seen, where)

    sites =
      Enum.map(sites, fn s ->
        %{transform: t, u: u} = Map.fetch!(seen, s.path)

        %{
          path: s.path,
          type: s.type,
          override: s.override,
          transform: t,
          u0: u,
          x_shape: Mx.shape(s.value),
          u_shape: Mx.shape(u)
        }
      end)

    %{plan | sites: sites} |> Map.put(:identity?, Enum.all?(sites, &(&1.transform == :identity)))
  end

  # Every starting value inside the support of its transform (checked in one evaluation).
  defp check_inside!(sites, seen, where) do
    insides = Enum.map(sites, &Map.fetch!(seen, &1.path).inside)
    Mx.eval(insides)

    Enum.zip(sites, insides)
    |> Enum.each(fn {s, ok} ->
      unless Mx.to_number(ok) do
        raise ArgumentError,
              "#{where}: the value #{inspect(Mx.to_list(s.value))} at #{Choicemap.format_path(s.path)} is outside the support " <>
                "of its transform #{inspect(Map.fetch!(seen, s.path).transform)}; start from a trace inside the support or fix transforms:"
      end
    end)
  end

  defp overrides!(overrides, where) when is_map(overrides),
    do:
      Map.new(overrides, fn {k, v} -> {Choicemap.path!(k), Transform.validate!(v, k, where)} end)

  defp overrides!(other, where) do
    raise ArgumentError,
          "#{where}: transforms: must be a map from address (or path) to a transform, got #{inspect(other)}"
  end

  @doc false
  # The log joint at the unconstrained values `us` (one array per site), plus the log-Jacobians
  # when `jacobian?` (a density on the unconstrained scale); differentiable in `us`.
  @spec log_density(map(), [Mx.t()], boolean()) :: Mx.t()
  def log_density(plan, us, jacobian?) do
    {w, _seen} = run(plan, at(plan, us), jacobian?)
    w
  end

  @doc false
  # The constrained values (one array per site, the choice's type) at `us`.
  @spec constrain(map(), [Mx.t()]) :: [Mx.t()]
  def constrain(%{identity?: true} = plan, us),
    do: Enum.zip_with(plan.sites, us, &cast(&2, &1.type))

  def constrain(plan, us) do
    {_w, seen} = run(plan, at(plan, us), false)
    # An identity site is its own value (no site records it).
    xs = Enum.zip_with(plan.sites, us, &Map.get_lazy(seen, &1.path, fn -> cast(&2, &1.type) end))
    Mx.eval(xs)
    xs
  end

  @doc false
  # `trace` with the selected choices moved to the constrained values of `us` (by `Gen.update/3`).
  @spec write(map(), Gen.Trace.t(), [Mx.t()]) :: Gen.Trace.t()
  def write(plan, trace, us) do
    cm = Choicemap.new(Enum.zip(Enum.map(plan.sites, & &1.path), constrain(plan, us)))
    {new, _w, _retdiff, _discard} = Gen.update(trace, cm)
    Gen.Inference.force(new)
  end

  @doc false
  # The starting unconstrained values, one f64 array per site.
  @spec start(map()) :: [Mx.t()]
  def start(plan), do: Enum.map(plan.sites, & &1.u0)

  # Sites with u in place; an identity site takes u itself (no site, as without transforms).
  defp at(plan, us) do
    Enum.zip_with(plan.sites, us, fn s, u ->
      if s.transform == :identity,
        do: {s.path, cast(u, s.type)},
        else: %Site{path: s.path, value: u, mode: :constrain, override: s.override, type: s.type}
    end)
  end

  defp cast(x, type), do: if(Mx.type(x) == type, do: x, else: Mx.as_type(x, type))

  # Assess with the sites in the choicemap, inside a pass: {weight, what the sites recorded}.
  defp run(plan, sites, jacobian?) do
    cm =
      Enum.reduce(sites, plan.choices, fn
        %Site{path: p} = s, cm -> Choicemap.put_submap(cm, p, %Choicemap{value: s})
        {p, v}, cm -> Choicemap.put(cm, p, v)
      end)

    prev = Process.get(@pass)
    Process.put(@pass, %{where: plan.where, jacobian?: jacobian?, cm: cm, seen: %{}})

    try do
      {w, _retval} = Gen.assess(Gen.get_gen_fn(plan.trace), Gen.get_args(plan.trace), cm)
      {w, Process.get(@pass).seen}
    after
      if prev, do: Process.put(@pass, prev), else: Process.delete(@pass)
    end
  end

  @doc false
  # Called by a distribution's assess on a Site leaf: {score, constrained value}.
  @spec assess_site(Gen.Distribution.t(), %Site{}) :: {Mx.t(), Mx.t()}
  def assess_site(d, %Site{} = site) do
    pass =
      Process.get(@pass) ||
        raise ArgumentError,
              "Gen.assess: a transform site at #{Choicemap.format_path(site.path)} outside a transform pass"

    t = transform!(d, site, pass)

    case site.mode do
      :probe ->
        x = site.value
        u = Transform.unconstrain(t, Mx.as_type(x, :f64))
        record(pass, site.path, %{transform: t, u: u, inside: Transform.inside(t, x)})
        {Gen.Vectorized.rescore(d, x), x}

      :constrain ->
        {x, lj} = Transform.constrain(t, site.value)
        x = cast(x, site.type)
        record(pass, site.path, x)
        lp = Gen.Vectorized.rescore(d, x)
        {if(pass.jacobian?, do: Mx.add(lp, Gen.Handlers.f64(lj)), else: lp), x}
    end
  end

  defp record(pass, path, what),
    do: Process.put(@pass, %{pass | seen: Map.put(pass.seen, path, what)})

  # The override, or the default transform of the distribution's support at its current parameters.
  defp transform!(d, site, pass) do
    t =
      case Gen.Distribution.support(d) do
        :discrete ->
          raise ArgumentError,
                "#{pass.where}: the selected choice at #{Choicemap.format_path(site.path)} is drawn from #{inspect(d.__struct__)}, " <>
                  "whose support is discrete; gradient-based inference moves only continuous choices (use MH or Gibbs for it)"

        support ->
          site.override || Transform.default(support)
      end

    if Transform.dependent?(t), do: Transform.resolve(t, values(pass), pass.where), else: t
  end

  # The current values for a bound function: the choicemap with each site replaced by the
  # constrained value it recorded, or removed while the model has not visited it yet.
  defp values(pass) do
    Enum.reduce(Choicemap.to_list(pass.cm), pass.cm, fn
      {p, %Site{}}, cm ->
        case Map.fetch(pass.seen, p) do
          {:ok, %Mx.Array{} = x} -> Choicemap.put(cm, p, x)
          {:ok, %{transform: _}} -> Choicemap.put(cm, p, Choicemap.get(pass.cm, p).value)
          :error -> Choicemap.put_submap(cm, p, Choicemap.new())
        end

      _, cm ->
        cm
    end)
  end
end
