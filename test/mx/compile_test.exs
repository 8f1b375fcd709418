defmodule Mx.CompileTest do
  # Mx.compile: replays equal uncompiled results bit for bit (the same kernels run on the
  # same values), for every primitive; the cache counts; errors are clear; memory stays flat.
  # Not async: memory tests read engine-wide counters.
  use ExUnit.Case, async: false
  import Bitwise
  alias Mx.{OpCases, ReferenceCase}

  @moduletag timeout: 600_000

  # Primitives no tape runs as an instruction, and why.
  @not_instructions %{
    constant: "captured as a tape constant",
    placeholder: "the tape's input slots",
    full: "parameter-free: folded into a constant at capture",
    iota: "parameter-free: folded into a constant at capture",
    arange: "parameter-free: folded into a constant at capture",
    linspace: "parameter-free: folded into a constant at capture",
    stop_gradient: "an alias of its input in a tape (it shares the buffer)"
  }

  defp same!(what, compiled, plain) do
    c = ReferenceCase.leaves(compiled)
    p = ReferenceCase.leaves(plain)
    assert length(c) == length(p), "#{what}: #{length(c)} outputs, uncompiled #{length(p)}"

    for {x, y} <- Enum.zip(c, p) do
      assert {x.shape, x.type} == {y.shape, y.type},
             "#{what}: #{Mx.describe(x)} vs #{Mx.describe(y)}"

      assert same_bits?(x, y), "#{what}: values differ"
    end
  end

  # Bit for bit, except that a NaN equals any NaN: IEEE 754 leaves the payload and sign of a NaN
  # computed from two NaNs unspecified, and which one the chip keeps follows the compiler's code.
  defp same_bits?(x, y) do
    {bx, by} = {Mx.to_binary(x), Mx.to_binary(y)}
    bx == by or (nan_layout(x.type) != nil and nan_equal?(bx, by, nan_layout(x.type)))
  end

  defp nan_layout(type) when type in [:f64, :c128], do: {64, 11}
  defp nan_layout(type) when type in [:f32, :c64], do: {32, 8}
  defp nan_layout(:f16), do: {16, 5}
  defp nan_layout(:bf16), do: {16, 8}
  defp nan_layout(_), do: nil

  defp nan_equal?(<<>>, <<>>, _), do: true

  defp nan_equal?(bx, by, {bits, exp} = layout) do
    <<a::little-size(bits), rx::binary>> = bx
    <<b::little-size(bits), ry::binary>> = by
    mant = bits - 1 - exp
    nan? = fn v -> (v >>> mant &&& (1 <<< exp) - 1) == (1 <<< exp) - 1 and (v &&& (1 <<< mant) - 1) != 0 end
    (a == b or (nan?.(a) and nan?.(b))) and nan_equal?(rx, ry, layout)
  end

  # Random draws of a key input, the LU gradient (lu_permutation) and attention's backward: no reference cases.
  defp extra_cases do
    key = Mx.Random.key(11)
    m = Mx.tensor([[2.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.1, 0.4, 4.0]], type: :f64)

    [
      {"random bits", fn [k] -> Mx.Random.bits(k, shape: {5}) end, [key]},
      {"random normal f64", fn [k] -> Mx.Random.normal(k, shape: {4}, type: :f64) end, [key]},
      {"random truncated normal",
       fn [k] -> Mx.Random.truncated_normal(k, -1.0, 2.0, shape: {4}) end, [key]},
      {"random gamma", fn [k] -> Mx.Random.gamma(k, 2.0, 1.5, shape: {4}) end, [key]},
      {"random poisson", fn [k] -> Mx.Random.poisson(k, 3.0, shape: {4}) end, [key]},
      {"random randint", fn [k] -> Mx.Random.randint(k, 0, 10, shape: {4}) end, [key]},
      {"grad of det (lu, lu_permutation)", fn [a] -> Mx.grad(&Mx.Linalg.det/1).(a) end, [m]},
      {"grad of scaled_dot_product_attention (its vjp)",
       fn [q] -> Mx.grad(&Mx.sum(Mx.NN.scaled_dot_product_attention(&1, q, q, mask: :causal))).(q) end,
       [Mx.reshape(m, {1, 1, 3, 3})]}
    ]
  end

  test "compiled equals uncompiled on every reference case, and every primitive runs in some tape" do
    cases =
      for file <- ReferenceCase.files(), c <- ReferenceCase.load!(file) do
        {f, ins} = ReferenceCase.as_function(file, c)
        {c.name, f, ins}
      end ++ extra_cases()

    ops =
      for {name, f, ins} <- cases, reduce: MapSet.new() do
        acc ->
          compiled = Mx.compile(f)
          same!(name, compiled.(ins), f.(ins))
          # A second call replays the cached tape.
          same!(name <> " (replay)", compiled.(ins), f.(ins))
          assert %{hits: 1, compiles: 1} = Mx.compile_stats(compiled)
          MapSet.union(acc, MapSet.new(Mx.Compile.tape_info(compiled, [ins]).ops))
      end

    missing = Enum.reject(Mx.NIF.op_names(), &(&1 in ops or Map.has_key?(@not_instructions, &1)))
    assert missing == [], "primitives no compiled case runs: #{inspect(missing)}"

    for {op, _why} <- @not_instructions do
      refute op in ops, "#{op} runs in a tape; remove it from @not_instructions"
    end
  end

  test "compiled value_and_grad equals uncompiled for every differentiable primitive's cases" do
    for {op, cs} <- OpCases.cases(), {desc, f, inputs} <- cs do
      g = fn args -> Mx.sum(apply(f, args)) end
      vg = Mx.value_and_grad(g)
      compiled = Mx.compile(vg)
      same!("#{op} #{desc}", compiled.(inputs), vg.(inputs))
      same!("#{op} #{desc} (replay)", compiled.(inputs), vg.(inputs))
    end
  end

  # A Gen-like log density: normal log-pdf sums in f64, a half-normal prior on a log scale.
  defp log_density(ys) do
    fn %{mu: mu, log_sigma: ls} ->
      sigma = Mx.exp(ls)
      z = Mx.divide(Mx.subtract(ys, mu), sigma)
      n = elem(ys.shape, 0)

      lik =
        Mx.sum(
          Mx.subtract(
            Mx.multiply(Mx.square(z), -0.5),
            Mx.add(ls, 0.5 * :math.log(2 * :math.pi()))
          )
        )

      prior = Mx.add(Mx.multiply(Mx.square(mu), -0.005), Mx.subtract(ls, sigma))
      Mx.add(Mx.add(lik, prior), Mx.multiply(Mx.tensor(0.0, type: :f64), n))
    end
  end

  test "value_and_grad of log densities: compiled equals uncompiled for many inputs" do
    ys = Mx.Random.normal(Mx.Random.key(3), shape: {50}, type: :f64) |> Mx.add(1.5)
    lp = log_density(ys)
    gen_lp = fn [mu, ls] -> Mx.sum(Gen.Dist.logpdf(Gen.Dist.normal(mu, Mx.exp(ls)), ys)) end
    mlp = fn x -> Mx.negate(Mx.sum(Mx.multiply(Mx.logaddexp(x, Mx.square(x)), Mx.sigmoid(x)))) end

    for {name, f, inputs} <- [
          {"normal log-pdf sum", lp,
           fn i ->
             %{
               mu: Mx.tensor(0.1 * i, type: :f64),
               log_sigma: Mx.tensor(-0.3 + 0.05 * i, type: :f64)
             }
           end},
          {"Gen.Dist.normal logpdf", gen_lp,
           fn i -> [Mx.tensor(0.2 * i, type: :f64), Mx.tensor(0.1 * i, type: :f64)] end},
          {"logaddexp and sigmoid", mlp,
           fn i -> Mx.multiply(Mx.iota({4}, type: :f64), 0.3 * i) end}
        ] do
      vg = Mx.value_and_grad(f)
      compiled = Mx.compile(vg)
      for i <- 1..5, do: same!("#{name} at #{i}", compiled.(inputs.(i)), vg.(inputs.(i)))
      assert %{compiles: 1, hits: 4, misses: 1} = Mx.compile_stats(compiled)
    end
  end

  test "the cache: the same signature hits, a new shape, dtype or static value recompiles, LRU eviction" do
    f = Mx.compile(fn x, n -> Mx.multiply(x, n) end, cache_size: 2)
    assert Mx.to_list(f.(Mx.tensor([1.0, 2.0]), 3)) == [3.0, 6.0]
    assert Mx.to_list(f.(Mx.tensor([4.0, 5.0]), 3)) == [12.0, 15.0]
    assert %{compiles: 1, hits: 1, misses: 1, entries: 1} = Mx.compile_stats(f)
    # a new shape, then a new dtype: two more compiles, and the first signature is evicted
    assert Mx.to_list(f.(Mx.tensor([1.0]), 3)) == [3.0]
    assert Mx.to_list(f.(Mx.tensor([1], type: :s64), 3)) == [3]
    assert %{compiles: 3, misses: 3, evictions: 1, entries: 2, tapes: 2} = Mx.compile_stats(f)
    # the evicted signature compiles again; a number argument is part of the signature
    assert Mx.to_list(f.(Mx.tensor([1.0, 2.0]), 3)) == [3.0, 6.0]
    assert Mx.to_list(f.(Mx.tensor([1.0, 2.0]), 4)) == [4.0, 8.0]
    assert %{compiles: 5, misses: 5, evictions: 3, hits: 1} = Mx.compile_stats(f)
    assert Mx.compile_stats(f).tape_bytes > 0
  end

  test "containers in and out: tuples, lists, maps and static terms keep their places" do
    f =
      Mx.compile(fn {a, [b, c]}, %{w: w, tag: tag} ->
        %{sum: Mx.add(a, b), rest: [c, {Mx.multiply(w, 2.0), tag}], n: 7}
      end)

    for k <- 1..2 do
      out =
        f.({Mx.tensor([1.0 * k]), [Mx.tensor([2.0]), Mx.tensor(3)]}, %{
          w: Mx.tensor([[1.0]]),
          tag: :x
        })

      assert %{sum: s, rest: [c, {w2, :x}], n: 7} = out
      assert {Mx.to_list(s), Mx.to_number(c), Mx.to_list(w2)} == {[1.0 * k + 2.0], 3, [[2.0]]}
      assert Mx.evaluated?(s)
    end

    assert %{compiles: 1, hits: 1} = Mx.compile_stats(f)
    # pending inputs are evaluated first; a constant output is returned as is
    g = Mx.compile(fn x -> {x, Mx.tensor(5.0)} end)
    {x, five} = g.(Mx.add(Mx.tensor([1.0]), 1.0))
    assert {Mx.to_list(x), Mx.to_number(five)} == {[2.0], 5.0}
  end

  test "parameter-free subgraphs are folded and duplicates merged at capture" do
    f = fn x -> Mx.add(Mx.multiply(Mx.exp(x), Mx.add(Mx.tensor(2.0), 1.0)), Mx.exp(x)) end
    info = Mx.Compile.tape_info(Mx.compile(f), [Mx.tensor([1.0])])
    assert info.ops == [:exp, :multiply, :add]
    assert info.folded >= 1 and info.merged >= 1 and info.constants == 1
  end

  test "lowering and fusion: tape_info reports no-ops, dead nodes and groups; values equal uncompiled bit for bit" do
    f = fn x, y ->
      a = x |> Mx.multiply(1.0) |> Mx.negate() |> Mx.negate() |> Mx.sin()
      b = a |> Mx.multiply(y) |> Mx.add(0.5) |> Mx.abs()
      {Mx.sum(Mx.subtract(b, x)), Mx.exp(b)}
    end

    c = Mx.compile(f)

    # odd sizes: one block with the trailing sum in it, and several blocks (split across cores)
    for {rows, cols} <- [{3, 7}, {5, 40_001}] do
      key = Mx.Random.key(rows)
      x = Mx.Random.normal(key, shape: {rows, cols})
      y = Mx.Random.normal(Mx.Random.fold_in(key, 1), shape: {cols})
      info = Mx.Compile.tape_info(c, [x, y])
      assert info.noops == 2 and info.dead == 1
      assert [[:sin, :multiply, :add, :abs, :subtract | _] | _] = info.fusion
      assert info.groups >= 1 and info.fused >= 5
      {s1, e1} = c.(x, y)
      {s2, e2} = f.(x, y)
      assert Mx.to_binary(s1) == Mx.to_binary(s2)
      assert Mx.to_binary(e1) == Mx.to_binary(e2)
    end
  end

  test "the small-array fast path: f64 ops with scalar sides, one-element predicates and whole sums equal uncompiled bit for bit" do
    f = fn x, s ->
      a = Mx.divide(x, s)
      neg = Mx.less(s, 0.0)
      p = Mx.logical_and(Mx.greater_equal(x, s), neg)
      r = Mx.select(neg, Mx.select(p, Mx.exp(a), Mx.subtract(s, x)), x)
      {Mx.sum(r), r, Mx.is_nan(a)}
    end

    c = Mx.compile(f, jit: false)

    for type <- [:f64, :f32], sv <- [-0.75, 0.25] do
      x = Mx.tensor([-1.0, 0.5, -0.0, 2.0, 3.5, -4.0], type: type)
      s = Mx.tensor(sv, type: type)
      info = Mx.Compile.tape_info(c, [x, s])
      # divide, <, >=, and, exp, subtract, two selects, sum, is_nan; for f32 only the bool and
      assert info.instructions == 10
      assert info.fast == if(type == :f64, do: 10, else: 1)
      got = c.(x, s) |> Tuple.to_list() |> Enum.map(&Mx.to_binary/1)
      want = f.(x, s) |> Tuple.to_list() |> Enum.map(&Mx.to_binary/1)
      assert got == want
    end
  end

  test "the fast path gives a NaN where both operands are NaN, for every pattern of one-element inputs" do
    pos = <<0, 0, 0, 0, 0, 0, 0xF8, 0x7F>>
    neg = <<0, 0, 0, 0, 0, 0, 0xF8, 0xFF>>

    nans = fn
      bits, 0 -> Mx.from_binary(bits, :f64, shape: {})
      bits, n -> Mx.from_binary(:binary.copy(bits, n), :f64, shape: {n})
    end

    for op <- [:add, :multiply, :subtract, :divide, :max, :min],
        n <- [2, 3, 55],
        {na, nb} <- [{n, n}, {0, n}, {n, 0}, {0, 0}],
        {x, y} <- [{pos, neg}, {neg, pos}] do
      f = fn a, b -> apply(Mx, op, [a, b]) end
      c = Mx.compile(f, jit: false)
      {a, b} = {nans.(x, na), nans.(y, nb)}
      assert Mx.Compile.tape_info(c, [a, b]).fast == 1
      assert same_bits?(c.(a, b), f.(a, b)), "#{op} #{na} #{nb}"
    end
  end

  test "a value needed while tracing raises a clear Mx.Error; fallback runs the function uncompiled" do
    branchy = fn x -> if Mx.to_number(Mx.sum(x)) > 0, do: x, else: Mx.negate(x) end

    e = assert_raise Mx.Error, fn -> Mx.compile(branchy).(Mx.tensor([1.0])) end

    assert e.message =~
             ~r/^\[compile\] the compiled function's input f32\[1\] needs a value while tracing/

    assert e.message =~ "use Mx.where, or compile(..., fallback: true)"

    f = Mx.compile(branchy, fallback: true)
    assert Mx.to_list(f.(Mx.tensor([-2.0]))) == [2.0]
    assert Mx.to_list(f.(Mx.tensor([3.0]))) == [3.0]
    assert %{compiles: 0, fallbacks: 1, hits: 1, misses: 1, tapes: 0} = Mx.compile_stats(f)

    # The same choice with Mx.where compiles.
    g = Mx.compile(fn x -> Mx.where(Mx.greater(Mx.sum(x), 0), x, Mx.negate(x)) end)
    assert Mx.to_list(g.(Mx.tensor([-2.0]))) == [2.0]
    assert Mx.to_list(g.(Mx.tensor([3.0]))) == [3.0]

    # Other errors raise whatever the fallback option.
    h = Mx.compile(fn x -> Mx.add(x, Mx.zeros({3})) end, fallback: true)
    assert_raise Mx.Error, ~r/^\[add\]/, fn -> h.(Mx.tensor([1.0, 2.0])) end
  end

  test "random keys are inputs: compiled draws equal uncompiled ones, key by key" do
    draw = fn k ->
      {Mx.Random.normal(k, shape: {3}, type: :f64), Mx.Random.uniform(k, shape: {2})}
    end

    f = Mx.compile(draw)

    for seed <- [1, 2, 3] do
      k = Mx.Random.key(seed)
      same!("key #{seed}", f.(k), draw.(k))
    end

    refute Mx.to_list(elem(f.(Mx.Random.key(1)), 0)) == Mx.to_list(elem(f.(Mx.Random.key(2)), 0))
    assert %{compiles: 1} = Mx.compile_stats(f)
  end

  test "transforms of a compiled function run it inside their trace; compiled calls inside a trace inline" do
    plain = fn x -> Mx.sum(Mx.multiply(Mx.square(x), Mx.sin(x))) end
    f = Mx.compile(plain)
    x = Mx.tensor([1.0, 2.0, -0.5])

    # grad, value_and_grad, jvp and vmap of the compiled function equal those of the plain one
    assert Mx.to_list(Mx.grad(f).(x)) == Mx.to_list(Mx.grad(plain).(x))
    {v, g} = Mx.value_and_grad(f).(x)

    assert {Mx.to_number(v), Mx.to_list(g)} ==
             {Mx.to_number(plain.(x)), Mx.to_list(Mx.grad(plain).(x))}

    xs = Mx.tensor([[1.0, 2.0], [3.0, -1.0]])
    assert Mx.to_list(Mx.vmap(f).(xs)) == Mx.to_list(Mx.vmap(plain).(xs))
    # the transformed calls neither replay nor trace a tape
    assert %{compiles: 0, hits: 0, misses: 0} = Mx.compile_stats(f)

    # Inside another compiled function f is traced inline, and gradients flow through it.
    g = Mx.compile(Mx.grad(fn x -> f.(Mx.multiply(x, 3.0)) end))
    want = Mx.grad(fn x -> plain.(Mx.multiply(x, 3.0)) end).(x)
    assert Mx.to_list(g.(x)) == Mx.to_list(want)

    # The replay NIF itself still refuses traced inputs (their derivative would be lost).
    msg =
      ~r/^\[compile\] an input is traced by Mx.grad\/vjp\/jvp\/vmap.*Mx.compile\(Mx.value_and_grad\(f\)\)/

    tape = Mx.Compile.tape!(f, [x])

    assert_raise Mx.Error, msg, fn ->
      Mx.grad(fn y -> Mx.Array.wrap(hd(Mx.NIF.compile_run(tape, [y.ref]))) end).(x)
    end
  end

  test "malformed arguments to the compile NIFs raise ArgumentError" do
    cache = Mx.NIF.compile_cache(2)
    a = Mx.tensor([1.0]).ref
    assert_raise ArgumentError, ~r/^\[compile\] cache_size/, fn -> Mx.NIF.compile_cache(0) end

    assert_raise ArgumentError, ~r/^\[compile\] argument 1 must be a compile cache/, fn ->
      Mx.NIF.compile_call(a, "k", [a])
    end

    assert_raise ArgumentError, ~r/^\[compile\] the signature key/, fn ->
      Mx.NIF.compile_call(cache, :k, [a])
    end

    assert_raise ArgumentError, ~r/^\[compile\] inputs must be/, fn ->
      Mx.NIF.compile_call(cache, "k", [1])
    end

    assert_raise ArgumentError, ~r/^\[compile\] argument 1 must be a tape/, fn ->
      Mx.NIF.compile_run(cache, [a])
    end

    assert_raise Mx.Error,
                 ~r/^\[compile\] input 0 is not a placeholder|is a .* node, not a placeholder/,
                 fn ->
                   Mx.NIF.compile_capture(cache, "k", [a], [a], nil)
                 end

    assert Mx.NIF.compile_call(cache, "k", [a]) == :miss

    assert_raise ArgumentError, ~r/^Mx.compile: cache_size/, fn ->
      Mx.compile(&Mx.negate/1, cache_size: 0)
    end

    assert_raise ArgumentError, ~r/unknown option/, fn -> Mx.compile(&Mx.negate/1, cache: 3) end

    assert_raise ArgumentError, ~r/expected a function returned by Mx.compile/, fn ->
      Mx.compile_stats(&Mx.negate/1)
    end
  end

  # ---- memory -------------------------------------------------------------------------

  @tag :slow
  test "memory stays flat over 10^6 replays; dropping the compiled function frees its tapes" do
    ys = Mx.Random.normal(Mx.Random.key(5), shape: {50}, type: :f64)
    vg = Mx.compile(Mx.value_and_grad(log_density(ys)))
    x = %{mu: Mx.tensor(0.3, type: :f64), log_sigma: Mx.tensor(0.1, type: :f64)}
    {_, _} = vg.(x)
    base = Mx.MemoryCheck.settled(Mx.Memory.report())

    Enum.each(1..1_000_000, fn _ ->
      {v, _g} = vg.(x)
      v
    end)

    after_loop = Mx.MemoryCheck.settled(base)
    assert after_loop.live_arrays <= base.live_arrays
    assert after_loop.active_bytes <= base.active_bytes
    assert after_loop.tapes == base.tapes
    assert %{hits: 1_000_000, compiles: 1} = Mx.compile_stats(vg)

    # The tapes go with the last reference to the compiled function.
    tapes = base.tapes

    Task.async(fn ->
      h = Mx.compile(fn a -> Mx.exp(a) end)
      h.(Mx.tensor([1.0]))
      assert Mx.Memory.report().tapes == tapes + 1
    end)
    |> Task.await()

    assert Mx.MemoryCheck.settled(base).tapes == tapes
    assert Mx.compile_stats(vg).tapes == 1
  end

  test "a process killed during a long replay does not crash the VM and its memory is freed" do
    f =
      Mx.compile(fn x ->
        Enum.reduce(1..40, x, fn i, acc ->
          if rem(i, 2) == 0, do: Mx.sin(acc), else: Mx.cos(acc)
        end)
      end)

    x = Mx.full({1 <<< 21}, 0.5)
    Mx.eval(x)
    _ = f.(x)
    base = Mx.MemoryCheck.settled(Mx.Memory.report())

    for _ <- 1..3 do
      pid = spawn(fn -> f.(x) end)
      Process.sleep(15)
      Process.exit(pid, :kill)
    end

    after_kill = Mx.MemoryCheck.settled(base)
    assert after_kill.active_bytes <= base.active_bytes
    assert after_kill.live_arrays <= base.live_arrays
    # The engine still works.
    assert Mx.to_number(Mx.sum(f.(Mx.full({4}, 0.5)))) > 0
  end
end
