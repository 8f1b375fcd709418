defmodule Mx.Compile do
  @moduledoc """
  `compile/2`: capture a function's graph once, replay it from C.

  The compiled function has `fun`'s contract: arrays and tuples, lists and
  maps of arrays in, the same out. The first call for an input *signature*
  (the arguments' container structure, every array's shape and dtype, and
  every other term's value) runs `fun` on placeholder arrays (*tracing*) and
  captures the graph between the placeholders and the outputs as a tape, a C
  structure (`c_src/compile.c`). Capturing evaluates the parts that do not
  depend on the inputs once (constant folding), merges duplicate nodes
  (common-subexpression elimination), removes exact algebraic no-ops and dead
  nodes, groups runs of elementwise ops to be replayed together block by block
  (fusion: their intermediates stay in small cache-resident blocks) and plans
  every other intermediate's place in one arena that a replay reuses, so a
  replay allocates only its outputs (`Mx.Compile.tape_info/2` shows the
  plan). Later calls with
  that signature replay the tape with the new inputs in one NIF call, with no
  Elixir graph building: inline when the tape is cheap, on a dirty scheduler
  when it is not (the same rule and threshold as `Mx.eval/1`).

      iex> f = Mx.compile(fn x, y -> Mx.add(Mx.multiply(x, 2.0), y) end)
      iex> f.(Mx.tensor([1.0, 2.0]), Mx.tensor([10.0, 20.0])) |> Mx.to_list()
      [12.0, 24.0]
      iex> f.(Mx.tensor([3.0, 4.0]), Mx.tensor([0.5, 0.5])) |> Mx.to_list()
      [6.5, 8.5]
      iex> Mx.compile_stats(f) |> Map.take([:compiles, :hits, :misses])
      %{compiles: 1, hits: 1, misses: 1}

  ## Rules

    * Only arrays are inputs. Numbers, atoms and other terms in the arguments
      are part of the signature: a new value traces again. Pass values that
      change from call to call as arrays (`Mx.tensor/2`).
    * Tracing gives `fun` arrays without values: reading one (`Mx.to_number/1`,
      `Mx.to_list/1`, `Mx.eval/1`) or branching on one raises `Mx.Error`
      ("[compile] ... needs a value while tracing"). Use `Mx.where/3` for
      data-dependent choices, or `fallback: true` to run such a signature
      uncompiled (it is remembered: later calls skip tracing).
    * Random keys are ordinary inputs: `Mx.Random` functions of a key argument
      replay with each call's key, giving the same draws as uncompiled code.
    * Transforms compose both ways: `Mx.compile(Mx.value_and_grad(f))` traces
      the gradient graph and replays it; differentiating or vmapping a compiled
      function runs `fun` inside that transform's trace (uncompiled: compile
      the transformed function to replay it). A compiled function called while
      another is being traced is inlined into that trace the same way.
    * Results are fresh evaluated arrays.

  ## The cache

  Each compiled function keeps up to `cache_size` signatures (default 32),
  evicting the least recently used. `Mx.compile_stats/1` returns its counters;
  `Mx.Memory.report/0` counts every live tape (`:tapes`, `:tape_bytes`).

  ## Two tiers

  A new tape replays in an interpreter at once. With `jit: true` (the default)
  an engine thread also writes it as C (`c_src/jit.c`: elementwise chains of
  one shape fused into one loop, intermediates as locals, the rest calling the
  interpreter's kernels), builds it with the system C compiler (`$CC`, else the
  compiler the NIF was built with) and swaps it in when loaded; later calls run
  it. Both tiers compute with the same C expressions (`c_src/prim/elementwise.h`);
  results agree within floating-point rounding: sums may associate differently
  (a full sum fused into a loop long enough to split across cores adds up P
  fixed ranges in order, then the P partials: P comes from the loop's length
  and cost, never the thread count, so a tape gives the same bits on any
  machine; its error bound, (N/P + P) u Σ|x|, is below a serial loop's
  N u Σ|x| and above the kernels' pairwise sums' tens of u Σ|x|), and
  generated code divides by a value constant over a loop by multiplying with
  its reciprocal when that is a normal number (within 2 ulps; exact division
  otherwise).
  Built objects are cached per user in `$XDG_CACHE_HOME/genmx` (or
  `~/.cache/genmx`), a directory created `0700` and refused when another user
  owns it or others may write to it (then nothing is kept); a cached file is
  loaded only when it is ours, private, and its bytes match the digest stored
  with it, else it is rebuilt. `MX_JIT=0` in the environment, or no compiler:
  the interpreter only, no error. A failed build is reported by `tape_info/2`
  (`tier: {:failed, reason}`) and the interpreter keeps running.
  `await_native/3` waits for the native tier.
  """

  alias Mx.{Array, NIF}

  @enforce_keys [:cache, :fun, :fallback, :jit]
  defstruct [:cache, :fun, :fallback, :jit]

  # Marks an array's place in a signature ({@leaf, shape, type}) and in an output template.
  @leaf :"$mx_array"
  @value_needed "needs a value while tracing"

  @doc """
  Returns a function with `fun`'s arity (up to 6) that replays `fun`'s graph
  from C. Options:

    * `:cache_size` — signatures kept, least recently used evicted (default 32)
    * `:fallback` — when tracing needs an array's value, run `fun` uncompiled
      for that signature instead of raising (default `false`)
    * `:jit` — also build each tape as native code in the background and run
      that once it is loaded (default `true`, or the `:genmx, :jit` application
      setting: the test suite sets `false` so that only the tests of this tier
      start compilers; see "Two tiers")

  See the module documentation for the rules.

      iex> f = Mx.compile(fn x -> Mx.sum(Mx.exp(x)) end, cache_size: 4)
      iex> f.(Mx.tensor([0.0, 0.0])) |> Mx.to_number()
      2.0
  """
  @spec compile(function(), keyword()) :: function()
  def compile(fun, opts \\ []) when is_function(fun) do
    opts =
      Mx.Opts.validate!(
        opts,
        [cache_size: 32, fallback: false, jit: Application.get_env(:genmx, :jit, true)],
        "Mx.Compile.compile"
      )

    size = opts[:cache_size]
    fallback = opts[:fallback]
    jit = opts[:jit]

    unless is_boolean(jit) do
      raise ArgumentError, "Mx.compile: jit must be a boolean, got #{inspect(jit)}"
    end

    unless is_integer(size) and size in 1..65_536 do
      raise ArgumentError,
            "Mx.compile: cache_size must be an integer from 1 to 65536, got #{inspect(size)}"
    end

    unless is_boolean(fallback) do
      raise ArgumentError, "Mx.compile: fallback must be a boolean, got #{inspect(fallback)}"
    end

    {:arity, arity} = Function.info(fun, :arity)

    closure(arity, %__MODULE__{
      cache: NIF.compile_cache(size),
      fun: fun,
      fallback: fallback,
      jit: jit
    })
  end

  defp closure(0, s), do: fn -> call(s, []) end
  defp closure(1, s), do: fn a -> call(s, [a]) end
  defp closure(2, s), do: fn a, b -> call(s, [a, b]) end
  defp closure(3, s), do: fn a, b, c -> call(s, [a, b, c]) end
  defp closure(4, s), do: fn a, b, c, d -> call(s, [a, b, c, d]) end
  defp closure(5, s), do: fn a, b, c, d, e -> call(s, [a, b, c, d, e]) end
  defp closure(6, s), do: fn a, b, c, d, e, f -> call(s, [a, b, c, d, e, f]) end

  defp closure(n, _s) do
    raise ArgumentError,
          "Mx.compile supports functions of up to 6 arguments, got arity #{n}; pass a tuple or map instead"
  end

  @doc """
  The cache counters of a function `compile/2` returned: `:hits` and
  `:misses` (signature lookups), `:compiles` (traces captured), `:fallbacks`
  (signatures that run uncompiled), `:evictions`, `:entries` (signatures
  cached), `:tapes`, `:cache_size` and `:tape_bytes` (the cached tapes'
  structures and constants).

      iex> f = Mx.compile(&Mx.negate/1)
      iex> for n <- [2, 2, 3], do: f.(Mx.iota({n}))
      iex> Mx.compile_stats(f) |> Map.take([:compiles, :hits, :misses, :entries])
      %{compiles: 2, entries: 2, hits: 1, misses: 2}
  """
  @spec stats(function()) :: %{atom() => non_neg_integer()}
  def stats(compiled) when is_function(compiled), do: NIF.compile_stats(state!(compiled).cache)

  @doc """
  Traces `compiled` for the signature of `args` again (caching the new tape:
  counted as a compile) and describes its tape: `%{instructions:,
  constants:, folded:, merged:, cost:, bytes:, deep:, ops: [op]}`, where
  `ops` are the primitives a replay runs, in order, `folded` the nodes
  evaluated at capture and `merged` the duplicates and aliases removed.
  Lowering adds `noops:` (exact algebraic no-ops removed: `x * 1`, `x / 1`,
  `x - 0`, `x + -0.0`, `-(-x)`, identity casts, broadcasts and transposes,
  selects on a constant predicate) and `dead:` (instructions nothing reads);
  the replay plan adds `groups:`, `fused:` and `fusion:` (the ops of each
  group of elementwise instructions replayed together block by block) and
  `arena_bytes:` (the intermediates' memory, allocated once per replay context) and
  `fast:` (elementwise f64 and bool instructions whose inputs have the output's size
  or one element, and whole-array f64 sums: a replay runs them as inline loops, with
  the same bits as their kernels). It
  also gives the new tape's execution tier (see `await_native/3` for the keys):
  `:compiling` right after tracing when `jit: true`.

      iex> f = Mx.compile(fn x -> Mx.add(Mx.exp(x), Mx.exp(x)) end)
      iex> Mx.Compile.tape_info(f, [Mx.tensor([1.0])]).ops
      [:exp, :add]
      iex> g = Mx.compile(fn x -> x |> Mx.multiply(1.0) |> Mx.negate() |> Mx.negate() |> Mx.exp() |> Mx.sin() end)
      iex> info = Mx.Compile.tape_info(g, [Mx.tensor([1.0, 2.0])])
      iex> {info.ops, info.noops, info.dead, info.fusion}
      {[:exp, :sin], 2, 1, [[:exp, :sin]]}
  """
  @spec tape_info(function(), list()) :: map()
  def tape_info(compiled, args) when is_function(compiled) and is_list(args),
    do: NIF.tape_info(tape!(compiled, args))

  @doc """
  Waits up to `timeout` ms for the native tier of the tape cached for `args`'
  signature (call `compiled` with such arguments first) and returns its state:
  `:tier` (`:native`, `:interpreter` when `jit: false`, `MX_JIT=0` or no C
  compiler, `{:failed, reason}`, or `:compiling` when the time ran out),
  `:compile_wall_us` and `:compile_cpu_us` (the C compiler's time; 0 on a
  disk-cache hit), `:cache_hit` and `:jit_note` (why the disk cache was
  refused, or that no compiler was found).

      iex> f = Mx.compile(fn x -> Mx.multiply(x, x) end, jit: false)
      iex> f.(Mx.tensor([3.0])) |> Mx.to_list()
      [9.0]
      iex> Mx.Compile.await_native(f, [Mx.tensor([1.0])], 1000).tier
      :interpreter
  """
  @spec await_native(function(), list(), non_neg_integer()) :: map()
  def await_native(compiled, args, timeout \\ 60_000)
      when is_function(compiled) and is_list(args) and is_integer(timeout) and timeout >= 0 do
    s = state!(compiled)
    {skeleton, _leaves} = flatten_args(args)

    case NIF.compile_lookup(s.cache, :erlang.term_to_binary(skeleton)) do
      nil ->
        raise ArgumentError,
              "Mx.Compile.await_native: no tape is cached for this signature; call the compiled function with such arguments first"

      tape ->
        wait_tier(tape, System.monotonic_time(:millisecond) + timeout)
    end
  end

  # The variables the native tier reads, as Elixir sees them (System.put_env does not reach C's getenv).
  defp jit_env do
    Enum.map(~w(MX_JIT CC XDG_CACHE_HOME HOME TMPDIR PATH), &System.get_env/1)
  end

  # Waits in slices of at most 100 ms on a dirty scheduler (tape_jit_wait), until ready or the deadline.
  defp wait_tier(tape, deadline) do
    left = deadline - System.monotonic_time(:millisecond)
    info = NIF.tape_jit_wait(tape, max(left, 0))

    if info.tier == :compiling and left > 100,
      do: wait_tier(tape, deadline),
      else: info
  end

  @doc false
  # The tape for args' signature, traced again and cached, for native callers (the C
  # samplers replay it themselves); raises ArgumentError when the signature falls back.
  @spec tape!(function(), list()) :: reference()
  def tape!(compiled, args) when is_function(compiled) and is_list(args) do
    s = state!(compiled)
    {skeleton, leaves} = flatten_args(args)

    case capture!(s, skeleton, :erlang.term_to_binary(skeleton), leaves) do
      :fallback ->
        raise ArgumentError, "Mx.Compile.tape_info: this signature runs uncompiled (fallback)"

      {tape, _template} ->
        tape
    end
  end

  @doc false
  # For a caller that keys a signature itself (Gen.Inference.Target keys a log density on its
  # model, data and selection): `key`, a binary, stands for every term of `args` but the arrays,
  # whose shapes and dtypes are added to it. Returns the tape cached under that signature (a hit)
  # or traces `compiled`'s function on `args` and caches it (a miss), both counted; with
  # `native: ms` also starts the tape's generated-C tier (a no-op once started) and waits up to
  # `ms` for it. Raises as tracing does.
  @spec keyed_tape!(function(), list(), binary(), keyword()) :: reference()
  def keyed_tape!(compiled, args, key, opts \\ [])
      when is_function(compiled) and is_list(args) and is_binary(key) do
    Mx.Opts.validate!(opts, [native: nil], "Mx.Compile.keyed_tape!")
    s = state!(compiled)
    {skeleton, leaves} = flatten_args(args)
    sig = :erlang.term_to_binary({:keyed, key, Enum.map(leaves, &{&1.shape, &1.type})})

    # compile_call counts the hit (and replays once); compile_lookup hands over the tape.
    cached =
      case NIF.compile_call(s.cache, sig, Enum.map(leaves, & &1.ref)) do
        {_template, _outs} -> NIF.compile_lookup(s.cache, sig)
        _ -> nil
      end

    tape =
      cached ||
        case capture!(s, skeleton, sig, leaves) do
          :fallback ->
            raise ArgumentError,
                  "Mx.Compile.keyed_tape!: this signature runs uncompiled (fallback)"

          {tape, _template} ->
            tape
        end

    if ms = opts[:native] do
      NIF.tape_jit(tape, jit_env())

      if NIF.tape_jit_info(tape).tier == :compiling,
        do: wait_tier(tape, System.monotonic_time(:millisecond) + ms)
    end

    tape
  end

  @doc false
  # Empties compiled's cache (its counters stay); a tape goes once nothing else holds it.
  @spec clear!(function()) :: :ok
  def clear!(compiled) when is_function(compiled), do: NIF.compile_clear(state!(compiled).cache)

  @doc false
  # Replays a tape (from tape!/2 or keyed_tape!/4) on arrays of its signature: its outputs, in order.
  @spec replay!(reference(), [Mx.t()]) :: [Mx.t()]
  def replay!(tape, arrays) when is_list(arrays),
    do: tape |> NIF.compile_run(Enum.map(arrays, & &1.ref)) |> Enum.map(&Array.wrap/1)

  defp state!(compiled) do
    {:env, env} = Function.info(compiled, :env)

    Enum.find(env, &match?(%__MODULE__{}, &1)) ||
      raise ArgumentError,
            "expected a function returned by Mx.compile/2, got #{inspect(compiled)}"
  end

  @doc false
  def call(s, args) do
    if Process.get(:mx_compile_tracing), do: apply(s.fun, args), else: call_cached(s, args)
  end

  defp call_cached(s, args) do
    {skeleton, leaves} = flatten_args(args)
    key = :erlang.term_to_binary(skeleton)
    refs = Enum.map(leaves, & &1.ref)

    case NIF.compile_call(s.cache, key, refs) do
      {template, outs} ->
        fill(template, outs)

      :miss ->
        case capture!(s, skeleton, key, leaves) do
          :fallback -> apply(s.fun, args)
          {tape, template} -> fill(template, NIF.compile_run(tape, refs))
        end

      :fallback ->
        apply(s.fun, args)

      :traced ->
        apply(s.fun, args)
    end
  end

  # Traces fun on placeholders and caches the tape: {tape, output template} or :fallback.
  defp capture!(s, skeleton, key, leaves) do
    holders = Enum.map(leaves, fn a -> NIF.placeholder(a.type, a.shape) |> Array.wrap() end)
    {traced_args, []} = fill_leaves(skeleton, holders)

    case trace(s, traced_args) do
      :fallback ->
        NIF.compile_fallback(s.cache, key)
        :fallback

      {:ok, result} ->
        {template, outs} = flatten_output(result)

        tape =
          NIF.compile_capture(
            s.cache,
            key,
            Enum.map(holders, & &1.ref),
            Enum.map(outs, & &1.ref),
            template
          )

        if s.jit, do: NIF.tape_jit(tape, jit_env())
        {tape, template}
    end
  end

  defp trace(s, traced_args) do
    previous = Process.put(:mx_compile_tracing, true)

    try do
      {:ok, apply(s.fun, traced_args)}
    rescue
      e in Mx.Error ->
        if s.fallback and String.contains?(e.message, @value_needed),
          do: :fallback,
          else: reraise(e, __STACKTRACE__)
    after
      if previous,
        do: Process.put(:mx_compile_tracing, previous),
        else: Process.delete(:mx_compile_tracing)
    end
  end

  # ---- containers: arrays out of the arguments and back into the outputs --------------

  # {signature skeleton, arrays in order}; maps are walked in key order.
  defp flatten_args(args) do
    {skeleton, acc} = flatten(args, [], fn a, acc -> {{@leaf, a.shape, a.type}, [a | acc]} end)
    {skeleton, Enum.reverse(acc)}
  end

  defp flatten_output(result) do
    {template, acc} = flatten(result, [], fn a, acc -> {@leaf, [a | acc]} end)
    {template, Enum.reverse(acc)}
  end

  defp flatten(tree, acc, leaf), do: Mx.Tree.walk(tree, acc, leaf, &is_struct(&1, Array))

  # Puts arrays back where a skeleton has {@leaf, shape, type}.
  defp fill_leaves(skeleton, arrays),
    do:
      Mx.Tree.walk(
        skeleton,
        arrays,
        fn _, [a | rest] -> {a, rest} end,
        &match?({@leaf, _, _}, &1)
      )

  # Puts output refs back where a template has @leaf.
  defp fill(template, refs) do
    {out, []} =
      Mx.Tree.walk(template, refs, fn _, [r | rest] -> {Array.wrap(r), rest} end, &(&1 == @leaf))

    out
  end
end
