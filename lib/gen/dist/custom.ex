defmodule Gen.Dist.Custom do
  @moduledoc """
  A distribution made from functions (`Gen.Dist.custom/1`) or from any
  module with the callbacks (`Gen.Dist.custom/2`): the way to define a
  distribution in a script. A `defimpl Gen.Distribution` in a script run by
  `mix run` has no effect, because the protocol was consolidated when the
  project was compiled; this struct's implementation is compiled in.

  From functions (parameters are whatever the functions close over):

    * `logpdf:` (required) `fn value -> log density end`, an Mx array
      broadcast against the value (numbers arrive as f64 scalars);
    * `sample:` `fn key -> value end` (without it, sampling raises: give
      the value as a constraint);
    * `sample_n:` `fn key, n -> n values on a new leading axis end`
      (default: `sample` with `n` split keys, stacked);
    * `reparameterized:` whether draws are a differentiable function of the
      parameters (default `false`);
    * `name:` shown in inspect and in errors; `params:` shown too (and by
      NaN diagnostics);
    * `support:` one of `Gen.Transform`'s supports (default `:real`), which
      gradient-based inference unconstrains automatically.

  From a module, `Gen.Dist.custom(MyDist, params)` calls
  `MyDist.logpdf(params, value)`, `MyDist.sample(params, key)` and, if
  defined, `MyDist.sample_n(params, key, n)` and
  `MyDist.reparameterized?(params)`.

      iex> laplace = fn mu, b ->
      ...>   Gen.Dist.custom(
      ...>     name: "laplace",
      ...>     params: %{mu: mu, b: b},
      ...>     logpdf: fn x -> Mx.negate(Mx.add(Mx.divide(Mx.abs(Mx.subtract(x, mu)), b), :math.log(2 * b))) end,
      ...>     sample: fn key -> Mx.add(mu, Mx.multiply(b, Mx.Random.laplace(key, type: :f64))) end
      ...>   )
      ...> end
      iex> Gen.Dist.logpdf(laplace.(1.0, 2.0), 3.0) |> Mx.to_number() |> Float.round(10)
      -2.3862943611
      iex> import Gen
      iex> m = gen fn -> trace(:x, laplace.(0.0, 1.0)) end
      iex> {_t, w} = Gen.generate(m, [], %{x: 1.0})
      iex> Mx.to_number(w) |> Float.round(10)
      -1.6931471806
  """

  defstruct [:name, :params, :logpdf, :sample, :sample_n, reparameterized: false, support: :real]

  @type t :: %__MODULE__{
          name: String.t(),
          params: term(),
          logpdf: (Mx.t() -> Mx.t()),
          sample: (Mx.t() -> Mx.t()) | nil,
          sample_n: (Mx.t(), pos_integer() -> Mx.t()) | nil,
          reparameterized: boolean(),
          support: Gen.Transform.support()
        }

  @keys [:logpdf, :sample, :sample_n, :reparameterized, :name, :params, :support]

  @doc "A distribution from functions (what `Gen.Dist.custom/1` builds); see the moduledoc for the options."
  @spec new(keyword()) :: t()
  def new(opts) when is_list(opts) do
    Mx.Opts.validate!(opts, @keys, "Gen.Dist.custom")
    name = Keyword.get(opts, :name, "custom")

    %__MODULE__{
      name: name,
      params: Keyword.get(opts, :params),
      logpdf: fun!(opts, :logpdf, 1, name, true),
      sample: fun!(opts, :sample, 1, name, false),
      sample_n: fun!(opts, :sample_n, 2, name, false),
      reparameterized: bool!(Keyword.get(opts, :reparameterized, false), name),
      support: Keyword.get(opts, :support, :real)
    }
  end

  def new(other),
    do:
      raise(
        ArgumentError,
        "Gen.Dist.custom/1: expected a keyword list of #{inspect(@keys)}, got #{inspect(other)}"
      )

  @doc "A distribution from a module with `logpdf/2` and `sample/2` (and optionally `sample_n/3`, `reparameterized?/1`)."
  @spec new(module(), term()) :: t()
  def new(module, params) when is_atom(module) do
    Code.ensure_loaded(module)

    unless function_exported?(module, :logpdf, 2) do
      raise ArgumentError,
            "Gen.Dist.custom/2: #{inspect(module)} must define logpdf(params, value) (and sample(params, key) to be sampled)"
    end

    exported? = &function_exported?(module, &1, &2)

    new(
      name: inspect(module),
      params: params,
      logpdf: &module.logpdf(params, &1),
      sample: if(exported?.(:sample, 2), do: &module.sample(params, &1)),
      sample_n: if(exported?.(:sample_n, 3), do: &module.sample_n(params, &1, &2)),
      reparameterized:
        if(exported?.(:reparameterized?, 1), do: module.reparameterized?(params), else: false)
    )
  end

  def new(other, _params),
    do: raise(ArgumentError, "Gen.Dist.custom/2: expected a module, got #{inspect(other)}")

  defp fun!(opts, key, arity, name, required?) do
    case Keyword.get(opts, key) do
      nil when not required? ->
        nil

      f when is_function(f, arity) ->
        f

      other ->
        raise ArgumentError,
              "Gen.Dist.custom (#{name}): #{key}: must be a function of #{arity} argument(s), got #{inspect(other)}"
    end
  end

  defp bool!(b, _name) when is_boolean(b), do: b

  defp bool!(b, name),
    do:
      raise(
        ArgumentError,
        "Gen.Dist.custom (#{name}): reparameterized: must be a boolean, got #{inspect(b)}"
      )

  @doc false
  # The result of a user function as an Mx array, or a raise naming the distribution.
  def array!(%Mx.Array{} = a, _d, _what), do: a
  def array!(x, _d, _what) when is_number(x), do: Mx.tensor(x, type: :f64)

  def array!(other, d, what),
    do:
      raise(
        ArgumentError,
        "Gen.Dist.custom (#{d.name}): #{what} must return an Mx array or a number, got #{inspect(other)}"
      )

  defimpl Gen.Distribution do
    alias Gen.Dist.Custom

    def logpdf(d, x), do: d.logpdf.(value(x)) |> Custom.array!(d, "logpdf")

    def sample(%{sample: nil} = d, _key), do: no_sample!(d)
    def sample(d, key), do: d.sample.(key) |> Custom.array!(d, "sample")

    def sample_n(%{sample: nil, sample_n: nil} = d, _key, _n), do: no_sample!(d)

    def sample_n(%{sample_n: nil} = d, key, n),
      do: Mx.stack(for k <- split(key, n), do: sample(d, k))

    def sample_n(d, key, n), do: d.sample_n.(key, n) |> Custom.array!(d, "sample_n")

    def reparameterized?(d), do: d.reparameterized
    def support(d), do: d.support

    defp split(key, 1), do: [key]

    defp split(key, n) do
      ks = Mx.Random.split(key, n)
      for i <- 0..(n - 1), do: ks[i]
    end

    defp value(x) when is_number(x), do: Mx.tensor(x, type: :f64)
    defp value(x) when is_boolean(x), do: Mx.tensor(x)
    defp value(x), do: x

    defp no_sample!(d) do
      raise ArgumentError,
            "Gen.Dist.custom (#{d.name}) has no sample: function, so it cannot be sampled; give sample: (or sample/2 in its module), " <>
              "or constrain its value"
    end
  end
end

defimpl Inspect, for: Gen.Dist.Custom do
  def inspect(%{name: name, params: nil}, _opts), do: "#Gen.Dist.Custom<#{name}>"

  def inspect(%{name: name, params: p}, opts),
    do: Inspect.Algebra.concat(["#Gen.Dist.Custom<#{name} ", Inspect.inspect(p, opts), ">"])
end
