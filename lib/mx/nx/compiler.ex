if Code.ensure_loaded?(Nx.Defn.Compiler) do
  defmodule Mx.Nx.Compiler do
    @moduledoc """
    An `Nx.Defn.Compiler` on Mx: a `defn` function becomes one Mx graph,
    captured by `Mx.compile/2` as a tape once per input template and replayed
    from C on later calls.

        iex> f = Nx.Defn.jit(fn x, y -> Nx.sum(Nx.multiply(x, y)) end, compiler: Mx.Nx.Compiler)
        iex> f.(Nx.tensor([1.0, 2.0]), Nx.tensor([3.0, 4.0])) |> Nx.to_number()
        11.0

    Also `Nx.Defn.default_options(compiler: Mx.Nx.Compiler)`. Results live on
    `Mx.Nx.Backend`; inputs of other backends are copied in once.

    ## How

    `Nx.Defn.Evaluator` walks the defn expression with `Mx.Nx.Backend`, whose
    callbacks build Mx ops, so a call is one lazy Mx graph. That walk runs
    inside `Mx.compile/2`: the first call for an input template traces it on
    placeholders and keeps the tape; later calls with the same function, the
    same input shapes and types, and the same options skip both the
    expression and the walk, and replay the tape. The compiled functions are
    cached in the calling process (at most 64 of them; the cache starts
    over when full).

    `while` and `cond` are host-driven: the evaluator reads the condition's
    value, which a tape cannot do, so an expression that needs a value while
    tracing (loops, conditions, `reduce`/`map` with an
    Elixir function) runs uncompiled for that template, still as lazy Mx ops
    (`Mx.compile/2`'s `fallback: true`). Expressions with hooks (`hook/3`)
    always run uncompiled, so the hooks see every call's values.
    `__stream__/7` is `Nx.Defn.Evaluator`'s on the inputs' backend.

    ## Options

      * `:hooks` - as for `Nx.Defn.Evaluator`
    """

    @behaviour Nx.Defn.Compiler

    alias Nx.Defn.Composite

    @cache_key {__MODULE__, :cache}
    @cache_limit 64

    @impl true
    def __partitions_options__(opts), do: [opts]

    @impl true
    def __to_backend__(_opts), do: {Mx.Nx.Backend, []}

    @impl true
    def __jit__(key, vars, fun, args_list, opts),
      do: __compile__(key, vars, fun, opts).(args_list)

    @impl true
    def __compile__(key, vars, fun, opts) do
      opts = Mx.Opts.validate!(opts, [:hooks], "Mx.Nx.Compiler")

      templates = Enum.map(vars, fn v -> Composite.traverse(v, &Nx.to_template/1) end)
      run = cached({key, templates, opts}, fn -> build(vars, fun, opts) end)

      fn args_list -> Enum.map(args_list, run) end
    end

    @impl true
    def __stream__(key, input, acc, vars, fun, args_list, opts) do
      Nx.Defn.Evaluator.__stream__(key, input, acc, vars, fun, args_list, opts)
    end

    defp cached(key, build) do
      cache = Process.get(@cache_key, %{})

      case cache do
        %{^key => run} ->
          run

        %{} ->
          run = build.()
          cache = if map_size(cache) >= @cache_limit, do: %{}, else: cache
          Process.put(@cache_key, Map.put(cache, key, run))
          run
      end
    end

    # A function of one call's arguments (zero-arity functions returning tensors) to its result.
    defp build(vars, fun, opts) do
      expr = fun.(vars)
      outputs = Composite.flatten_list([expr])
      # The expression is built once; the evaluator gets it as is.
      eval = Nx.Defn.Evaluator.__compile__(nil, vars, fn _ -> expr end, opts)

      # The evaluator on Mx arrays, as a function of a list of arrays to a list of arrays.
      walk = fn arrays ->
        params = Enum.map(arrays, fn a -> fn -> Mx.to_nx(a) end end)
        [result] = Nx.with_default_backend(Mx.Nx.Backend, fn -> eval.([params]) end)
        [result] |> Composite.flatten_list() |> Enum.map(&Mx.from_nx/1)
      end

      walk =
        if Nx.Defn.Tree.has_hooks?(expr, opts[:hooks] || %{}),
          do: walk,
          else: Mx.compile(walk, fallback: true)

      fn args ->
        arrays = walk.(Enum.map(args, &Mx.from_nx(&1.())))

        outs =
          Enum.zip_with(outputs, arrays, fn out, a -> %{out | data: %Mx.Nx.Backend{array: a}} end)

        {result, []} = Composite.traverse(expr, outs, fn _, [t | rest] -> {t, rest} end)
        result
      end
    end
  end
end
