defmodule Gen.Factor do
  @moduledoc """
  A factor: a term `logp` added to the log joint density (Stan's
  `target += logp`, PyMC's `Potential`, NumPyro's `factor`), written
  `Gen.factor(logp)` or `Gen.factor(addr, logp)` in a `gen` body.

  A factor is a generative function with no random choices whose score is
  `logp` (summed over its elements; per particle under a particle batch),
  so every GFI method scores it as it scores an observation:

    * `simulate`, `propose`: the score includes `logp`;
    * `generate`: the weight includes `logp` (nothing of it is sampled);
    * `update`, `regenerate`: the weight includes new `logp` − old `logp`;
    * `assess`: the weight includes `logp`;
    * `project`: `logp` when the factor's address is selected
      (`Gen.Selection.all/0` selects it, so `project(t, all)` is the score;
      a selection of latent addresses does not).

  `Gen.factor(logp)` puts the i-th such factor of a call at the address
  `{:factor, i}`; `Gen.factor(addr, logp)` names it. It adds no choice to
  the trace and returns `nil`. Gradients flow through `logp`, so NUTS,
  HMC, MALA, MAP and VI see it.

      iex> import Gen
      iex> m = gen fn -> x = trace(:x, Gen.Dist.normal(0.0, 1.0)); Gen.factor(Mx.negate(Mx.abs(x))); x end
      iex> {t, w} = Gen.generate(m, [], %{x: 2.0})
      iex> # log N(2; 0, 1) - |2|
      iex> {Float.round(Mx.to_number(w), 10), Mx.to_number(t.score) == Mx.to_number(w), Enum.count(t.choices)}
      {-4.9189385332, true, 1}
  """

  defstruct [:logp]
  @type t :: %__MODULE__{logp: Mx.t()}

  @doc """
  A factor of `logp` (a number or an Mx array of any shape, summed).

      iex> Gen.Factor.new(-1.5).logp |> Mx.to_number()
      -1.5
  """
  @spec new(Mx.tensor_like()) :: t()
  def new(logp) when is_number(logp) or is_struct(logp, Mx.Array),
    do: %__MODULE__{logp: Gen.Handlers.f64(logp)}

  def new(other) do
    raise ArgumentError,
          "Gen.factor: the log factor must be a number or an Mx array, got #{inspect(other)}"
  end
end

defimpl Inspect, for: Gen.Factor do
  def inspect(%{logp: lp}, _opts), do: "#Gen.Factor<#{Mx.describe(lp)}>"
end

defimpl Gen.GenerativeFunction, for: Gen.Factor do
  alias Gen.{Choicemap, Selection, Trace}

  def simulate(f, _args, _key), do: trace(f)

  def generate(f, _args, cm, _key) do
    no_choices!(cm, "Gen.generate")
    t = trace(f)
    {t, t.score}
  end

  def update(f, %Trace{} = prev, _args, _argdiffs, cm, _key) do
    no_choices!(cm, "Gen.update")
    t = trace(f)
    {t, weight(f, t, prev), :no_change, Choicemap.new()}
  end

  def regenerate(f, %Trace{} = prev, _args, _argdiffs, _sel, _key) do
    t = trace(f)
    {t, weight(f, t, prev), :no_change}
  end

  def assess(f, _args, cm) do
    no_choices!(cm, "Gen.assess")
    {trace(f).score, nil}
  end

  def project(_f, %Trace{score: s}, sel),
    do: if(Selection.member?(sel, []), do: s, else: Gen.Handlers.zero())

  def propose(f, _args, _key), do: {Choicemap.new(), trace(f).score, nil}

  defp trace(%{logp: lp} = f) do
    score = Gen.Vectorized.site_total(lp)
    Gen.NaN.site(f, nil, score)
    %Trace{gen_fn: f, args: [], choices: Choicemap.new(), retval: nil, score: score}
  end

  defp weight(f, t, prev) do
    w = Mx.subtract(t.score, prev.score)
    Gen.NaN.site_weight(f, nil, w, t.score, prev.score)
    w
  end

  defp no_choices!(cm, method) do
    unless Choicemap.empty?(cm) do
      raise ArgumentError,
            "#{method}: constraints #{inspect(Enum.map(cm, &elem(&1, 0)))} name a factor (Gen.factor), which has no random choices"
    end
  end
end
