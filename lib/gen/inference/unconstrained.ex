defmodule Gen.Inference.Unconstrained do
  @moduledoc false
  # The transform pass under `Gen.Inference.Target` (which lays out the selected choices on the
  # unconstrained scale of `Gen.Transform`). A selected leaf of the choicemap handed to
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
  # Assess `target`'s model (gen_fn, args) on its choices with `sites` in place (a Site, or
  # {path, value}), inside a pass: {weight, what the sites recorded}; errors name target.caller.
  @spec run(map(), list(), boolean()) :: {Mx.t(), map()}
  def run(target, sites, jacobian?) do
    cm =
      Enum.reduce(sites, target.choices, fn
        %Site{path: p} = s, cm -> Choicemap.put_submap(cm, p, %Choicemap{value: s})
        {p, v}, cm -> Choicemap.put(cm, p, v)
      end)

    prev = Process.get(@pass)
    Process.put(@pass, %{where: target.caller, jacobian?: jacobian?, cm: cm, seen: %{}})

    try do
      {w, _retval} = Gen.assess(target.gen_fn, target.args, cm)
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

  defp cast(x, type), do: if(Mx.type(x) == type, do: x, else: Mx.as_type(x, type))

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
