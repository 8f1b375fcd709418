defmodule Gen.Control do
  @moduledoc """
  Elixir control flow on sampled values inside `gen` and `defgen` bodies.

  Elixir treats every `%Mx.Array{}` as true and orders it above every
  number, so `if z`, `z > 0.5` or `case k do 0 -> ... end` on an Mx value
  would silently take one branch whatever the array holds. The `gen` and
  `defgen` macros own their body and rewrite it (`rewrite/2`) so that
  these forms do what the user means, or raise:

    * conditions — of `if`, `unless`, each `cond` clause, and the tested
      operand of `&&`, `||`, `!`, `and`, `or`, `not`: a rank-0 boolean array
      becomes `true`/`false`, a rank-0 integer array 0 or 1 becomes
      `false`/`true` (a Bernoulli value given as a number);
    * comparisons `<`, `>`, `<=`, `>=` (and `==`, `!=` against a number or
      a boolean) with an Mx operand compare its value: a rank-0 array of
      any real type becomes its number (NaN raises);
    * the subject of a `case` (or each element of a subject written as a
      tuple): a rank-0 boolean or integer array becomes its Elixir value,
      so `case k do 0 -> ...; 1 -> ... end` matches the drawn category.

  Reading a value evaluates it then. Anything else raises `ArgumentError`,
  naming the form, its place in the source, and the address of the choice
  the value came from when it is the return value of a trace site of the
  running call: a non-scalar array, a float as a condition, an integer
  other than 0/1 as a condition, and any array under a vectorized particle
  batch (`Gen.vsimulate/4`, `Gen.vgenerate/5`, vectorized inference),
  where each particle may hold another value. Branch elementwise with
  `Mx.where/3` (`Mx.select/3`), or choose between generative functions with
  `Gen.Combinators.switch/1` (the vectorized switch under a batch). A `case`
  only raises for a float or non-scalar subject when a clause's pattern or
  guard would test it (a bare variable just binds it); a pattern still
  cannot match an array's value, so match on converted values.

  Only the body's own code is rewritten, not functions it calls, and
  guards (`when`) are Elixir's: read values there with `Mx.to_number/1`.

      iex> import Gen
      iex> m = gen fn -> z = trace(:z, Gen.Dist.bernoulli(0.5)); if z, do: 3.0, else: 0.0 end
      iex> for seed <- [0, 3], do: Gen.simulate(m, [], key: Mx.Random.key(seed)) |> Gen.get_retval()
      [3.0, 0.0]
      iex> {_t, w} = Gen.generate(m, [], %{z: false})
      iex> Mx.to_number(w) |> Float.round(6)
      -0.693147
  """

  @typedoc false
  @type info :: {String.t(), String.t(), String.t()}

  @comparisons [:<, :>, :<=, :>=, :==, :!=]

  # ---- the rewrite (compile time) ----------------------------------------------------

  @doc false
  # The body of a gen/defgen with every control-flow form routed through this module.
  @spec rewrite(Macro.t(), Macro.Env.t()) :: Macro.t()
  def rewrite(ast, env), do: walk(ast, env)

  # Guards and quoted code are Elixir's own: never rewritten.
  defp walk({:when, _, _} = guard, _env), do: guard
  defp walk({:quote, _, _} = quoted, _env), do: quoted

  defp walk({op, meta, [c, clauses]}, env) when op in [:if, :unless] and is_list(clauses) do
    {op, meta, [test(walk(c, env), "#{op} #{show(c)}", meta, env), walk(clauses, env)]}
  end

  defp walk({:cond, meta, [[do: clauses]]}, env) when is_list(clauses) do
    clauses =
      Enum.map(clauses, fn {:->, m, [[c], body]} ->
        {:->, m, [[test(walk(c, env), "cond clause #{show(c)}", m, env)], walk(body, env)]}
      end)

    {:cond, meta, [[do: clauses]]}
  end

  defp walk({:case, meta, [subject, [do: clauses]]}, env) when is_list(clauses) do
    clauses = walk(clauses, env)
    guarded? = Enum.any?(clauses, fn {:->, _, [[p], _]} -> match?({:when, _, _}, p) end)
    patterns = Enum.map(clauses, fn {:->, _, [[p], _]} -> unguard(p) end)
    label = "case #{show(subject)}"

    subject =
      case subject do
        {:{}, m, elems} ->
          {:{}, m, case_elems(elems, patterns, guarded?, label, meta, env)}

        {a, b} ->
          List.to_tuple(case_elems([a, b], patterns, guarded?, label, meta, env))

        s ->
          case_subject(
            walk(s, env),
            guarded? or not Enum.all?(patterns, &bare?/1),
            label,
            meta,
            env
          )
      end

    {:case, meta, [subject, [do: clauses]]}
  end

  defp walk({op, meta, [l, r]}, env) when op in [:&&, :||, :and, :or] do
    {op, meta,
     [test(walk(l, env), "#{op} (left of #{show({op, meta, [l, r]})})", meta, env), walk(r, env)]}
  end

  defp walk({op, meta, [x]}, env) when op in [:!, :not] do
    {op, meta, [test(walk(x, env), "#{op} #{show(x)}", meta, env)]}
  end

  defp walk({op, meta, [a, b]} = expr, env) when op in @comparisons do
    info = info(show(expr), meta, env)

    quote do:
            Gen.Control.compare(
              unquote(op),
              unquote(walk(a, env)),
              unquote(walk(b, env)),
              unquote(Macro.escape(info))
            )
  end

  defp walk({form, meta, args}, env) when is_list(args),
    do: {walk(form, env), meta, Enum.map(args, &walk(&1, env))}

  defp walk({a, b}, env), do: {walk(a, env), walk(b, env)}
  defp walk(list, env) when is_list(list), do: Enum.map(list, &walk(&1, env))
  defp walk(other, _env), do: other

  # Elements of a subject written as a tuple: each tested where some clause's pattern tests it.
  defp case_elems(elems, patterns, guarded?, label, meta, env) do
    n = length(elems)

    elems
    |> Enum.with_index()
    |> Enum.map(fn {e, i} ->
      tests? = guarded? or Enum.any?(patterns, &(not bare?(elem_pattern(&1, i, n))))
      case_subject(walk(e, env), tests?, label, meta, env)
    end)
  end

  defp elem_pattern({:{}, _, ps}, i, n) when length(ps) == n, do: Enum.at(ps, i)
  defp elem_pattern({a, b}, i, 2), do: elem({a, b}, i)

  defp elem_pattern({:=, _, [a, b]}, i, n),
    do: if(bare?(a), do: elem_pattern(b, i, n), else: elem_pattern(a, i, n))

  defp elem_pattern(p, _i, _n), do: if(bare?(p), do: p, else: :tested)

  defp case_subject(ast, tests?, label, meta, env) do
    quote do:
            Gen.Control.subject!(
              unquote(ast),
              unquote(tests?),
              unquote(Macro.escape(info(label, meta, env)))
            )
  end

  defp unguard({:when, _, [p | _]}), do: p
  defp unguard(p), do: p

  # A pattern that only binds: a variable (or _), or `a = b` of two such.
  defp bare?({name, _, ctx}) when is_atom(name) and is_atom(ctx), do: true
  defp bare?({:=, _, [a, b]}), do: bare?(a) and bare?(b)
  defp bare?(_), do: false

  # Literals are left alone: they cannot be Mx arrays.
  defp test(c, _label, _meta, _env)
       when is_boolean(c) or is_nil(c) or is_number(c) or is_binary(c),
       do: c

  defp test(c, label, meta, env) do
    quote do: Gen.Control.test!(unquote(c), unquote(Macro.escape(info(label, meta, env))))
  end

  defp info(label, meta, env),
    do: {label, Path.relative_to_cwd(env.file), to_string(Keyword.get(meta, :line, env.line))}

  defp show(ast) do
    s = Macro.to_string(ast)
    if String.length(s) > 60, do: String.slice(s, 0, 57) <> "...", else: s
  end

  # ---- run time ---------------------------------------------------------------------

  @doc false
  # A tested value: Elixir terms pass; a rank-0 boolean array, or integer 0/1, becomes a boolean.
  @spec test!(term(), info()) :: term()
  def test!(%Mx.Array{} = a, info) do
    case read!(a, :test, info) do
      b when is_boolean(b) -> b
      0 -> false
      1 -> true
      x -> fail!(a, info, "tests the integer #{x}, which is not a condition", fix(:test))
    end
  end

  def test!(x, _info), do: x

  @doc false
  # A case subject some clause tests: a rank-0 boolean/integer array becomes its value.
  @spec subject!(term(), boolean(), info()) :: term()
  def subject!(%Mx.Array{} = a, true, info), do: read!(a, :case, info)
  def subject!(x, _tests?, _info), do: x

  @doc false
  # A comparison: with an Mx operand, of its value (a rank-0 array of any real type).
  @spec compare(atom(), term(), term(), info()) :: boolean()
  def compare(op, a, b, info) when is_struct(a, Mx.Array) or is_struct(b, Mx.Array) do
    if op in [:==, :!=] and not (scalar?(a) and scalar?(b)) do
      # Identity comparisons (with nil, atoms, other arrays) stay Elixir's.
      apply(Kernel, op, [a, b])
    else
      ordered(op, number!(a, info), number!(b, info))
    end
  end

  def compare(op, a, b, _info), do: apply(Kernel, op, [a, b])

  defp scalar?(x), do: is_struct(x, Mx.Array) or is_number(x) or is_boolean(x)

  defp number!(%Mx.Array{} = a, info) do
    case read!(a, :compare, info) do
      :nan -> fail!(a, info, "compares NaN", "a NaN has no order: find where it comes from")
      x -> x
    end
  end

  defp number!(x, _info), do: x

  defp ordered(op, x, y) when is_number(x) and is_number(y), do: apply(Kernel, op, [x, y])
  defp ordered(op, x, y), do: apply(Kernel, op, [rank(x), rank(y)])

  # Infinities (atoms from Mx.to_number/1) ordered around the numbers.
  defp rank(:neg_infinity), do: {0, 0}
  defp rank(:infinity), do: {2, 0}
  defp rank(x) when is_number(x), do: {1, x}
  defp rank(x), do: {3, x}

  # The value of a rank-0 array (of a discrete type, or any real type in a comparison),
  # or a raise saying why it has none here.
  defp read!(a, use, info) do
    n = Gen.Vectorized.batch()
    verb = %{test: "tests", case: "matches on", compare: "compares"}[use]

    cond do
      n != nil ->
        fail!(
          a,
          info,
          "#{verb} an Mx array under a vectorized particle batch (#{n} particles), where each particle may hold another value",
          fix(:batch)
        )

      Mx.rank(a) != 0 ->
        fail!(a, info, "#{verb} an Mx array #{Mx.describe(a)}, not a single value", fix(:array))

      discrete?(a) or (use == :compare and Mx.Type.float?(Mx.type(a))) ->
        Mx.to_number(a)

      use == :test ->
        fail!(
          a,
          info,
          "tests the #{Mx.describe(a)} array, which Elixir takes as true whatever it holds",
          fix(:test)
        )

      true ->
        fail!(
          a,
          info,
          "matches on the #{Mx.describe(a)} array: patterns and guards compare terms, not values",
          fix(:case)
        )
    end
  end

  defp discrete?(a), do: Mx.type(a) == :bool or Mx.Type.integer?(Mx.type(a))

  defp fix(:test),
    do:
      "a condition needs a boolean: compare the value (x > 0.5, k == 2), or branch elementwise with Mx.where/3"

  defp fix(:case),
    do:
      "match on a boolean or integer choice, compare the value in the clause body (x > 0.5), or branch elementwise with Mx.where/3"

  defp fix(:array),
    do:
      "branch elementwise with Mx.where/3 (Mx.select/3), or choose between generative functions with Gen.Combinators.switch/1"

  defp fix(:batch),
    do:
      "branch per particle with Mx.where/3 (Mx.select/3), or choose between generative functions with " <>
        "Gen.Combinators.vswitch/1, or run the scalar GFI once per particle"

  defp fail!(a, {label, file, line}, problem, fix) do
    raise ArgumentError, "gen body: `#{label}` (#{file}:#{line}) #{problem}#{source(a)}; #{fix}"
  end

  # The address of the trace site of the running call that returned this array, if any.
  defp source(a) do
    with %{subtraces: subs} = state <- Gen.Handlers.current(),
         {path, _} <- Enum.find(subs, fn {_p, t} -> t.retval === a end) do
      " (the value of the choice at #{Gen.Handlers.where(state, path)})"
    else
      _ -> ""
    end
  end
end
