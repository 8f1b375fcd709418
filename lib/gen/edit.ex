defmodule Gen.Edit do
  @moduledoc """
  GenJAX-style edit requests for `Gen.edit/3`, each defined by the GFI
  method it stands for (so `edit` adds no handler of its own, STYLE.md 15):

    * `constraint/1` — `Gen.update/3` with the trace's own arguments:
      weight and discard are update's.
    * `selection/1` — `Gen.regenerate/3`: weight is regenerate's; discard
      holds the old values of the choices the new trace no longer holds with
      the same value (the selected choices and removed ones).
    * `proposal/2` — a Metropolis–Hastings move with a custom proposal, as
      Gen.jl's `metropolis_hastings(trace, proposal, args)`: the proposal is
      run on `[trace | args]`, its choices are written into the trace with
      update, and the weight is the log acceptance ratio

          update weight − log q(proposed; trace, args) + log q(discard; new trace, args)

      the last term being `Gen.assess/3` of the proposal on the discarded
      choices (so the proposal must be able to propose them back from the
      new trace).

  Every request returns `{new_trace, weight, discard}`.
  """

  alias Gen.{Choicemap, Selection, Trace}

  defmodule Update do
    @moduledoc "An edit request that constrains choices (see `Gen.Edit.constraint/1`)."
    defstruct [:constraints]
    @type t :: %__MODULE__{constraints: Gen.Choicemap.t()}
  end

  defmodule Regenerate do
    @moduledoc "An edit request that resamples selected choices (see `Gen.Edit.selection/1`)."
    defstruct [:selection]
    @type t :: %__MODULE__{selection: Gen.Selection.t()}
  end

  defmodule Proposal do
    @moduledoc "An edit request that moves a trace with a proposal (see `Gen.Edit.proposal/2`)."
    defstruct [:gen_fn, args: []]
    @type t :: %__MODULE__{gen_fn: Gen.GenerativeFunction.t(), args: [term()]}
  end

  @type request :: Update.t() | Regenerate.t() | Proposal.t()

  @doc """
  A request to set the choices of `constraints` (a choicemap, or a map or
  list for `Gen.choicemap/1`).

      iex> Gen.Edit.constraint(%{x: 1.0}).constraints |> Gen.Choicemap.get(:x) |> Mx.to_number()
      1.0
  """
  @spec constraint(Choicemap.t() | map() | list()) :: Update.t()
  def constraint(constraints), do: %Update{constraints: Choicemap.new(constraints)}

  @doc """
  A request to resample the choices in `selection` (a `Gen.Selection`, or
  addresses for `Gen.select/1`) from their prior.

      iex> Gen.Edit.selection(:x).selection |> Gen.Selection.member?(:x)
      true
  """
  @spec selection(Selection.t() | Choicemap.path() | [Choicemap.path()]) :: Regenerate.t()
  def selection(%Selection{} = s), do: %Regenerate{selection: s}
  def selection(addrs), do: %Regenerate{selection: Selection.new(addrs)}

  @doc """
  A request to move the trace with the generative function `proposal`,
  called on `[trace | args]`; its choices are addresses of the model.

      iex> import Gen
      iex> q = gen fn t -> trace(:x, Gen.Dist.normal(t[:x], 0.5)) end
      iex> Gen.Edit.proposal(q).args
      []
  """
  @spec proposal(Gen.GenerativeFunction.t(), [term()]) :: Proposal.t()
  def proposal(gen_fn, args \\ [])

  def proposal(gen_fn, args) when is_list(args) do
    if Gen.GenerativeFunction.impl_for(gen_fn) in [nil, Gen.GenerativeFunction.Any] do
      raise ArgumentError, "Gen.Edit.proposal: expected a generative function (made with gen/defgen), got #{inspect(gen_fn)}"
    end

    %Proposal{gen_fn: gen_fn, args: args}
  end

  def proposal(_gen_fn, args) do
    raise ArgumentError, "Gen.Edit.proposal: the proposal's extra arguments must be a list, got #{inspect(args)}"
  end

  @doc false
  # Gen.edit/3: the request's GFI method(s), with the caller's options (key:).
  @spec run(Trace.t(), request(), keyword()) :: {Trace.t(), Mx.t(), Choicemap.t()}
  def run(%Trace{} = trace, %Update{constraints: cm}, opts) do
    {new, w, _retdiff, discard} = Gen.update(trace, cm, opts)
    {new, w, discard}
  end

  def run(%Trace{} = trace, %Regenerate{selection: sel}, opts) do
    {new, w, _retdiff} = Gen.regenerate(trace, sel, opts)
    {new, w, regenerate_discard(trace, new, sel)}
  end

  def run(%Trace{} = trace, %Proposal{gen_fn: q, args: args}, opts) do
    # One key for the proposal, one for update (which samples choices the move makes reachable).
    {k_prop, k_upd} =
      case Keyword.fetch(opts, :key) do
        {:ok, k} ->
          ks = Mx.Random.split(k)
          {ks[0], ks[1]}

        :error ->
          {Gen.next_key(), Gen.next_key()}
      end

    {proposed, fwd, _} = Gen.propose(q, [trace | args], key: k_prop)
    {new, w, _retdiff, discard} = Gen.update(trace, proposed, key: k_upd)
    {bwd, _} = Gen.assess(q, [new | args], discard)
    {new, w |> Mx.subtract(fwd) |> Mx.add(bwd), discard}
  end

  def run(%Trace{}, request, _opts) do
    raise ArgumentError,
          "Gen.edit: unknown edit request #{inspect(request)}; make one with Gen.Edit.constraint/1, " <>
            "Gen.Edit.selection/1 or Gen.Edit.proposal/2"
  end

  # Old values the new trace does not keep: selected choices and removed ones.
  defp regenerate_discard(old, new, sel) do
    Enum.reduce(old.choices, Choicemap.new(), fn {path, v}, acc ->
      if Selection.member?(sel, path) or not Choicemap.has_value?(new.choices, path),
        do: Choicemap.put(acc, path, v),
        else: acc
    end)
  end
end
