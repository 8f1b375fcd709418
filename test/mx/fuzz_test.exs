defmodule Mx.FuzzTest do
  # Throws random and malformed arguments at every function Mx.NIF exports.
  # A call may return or raise Mx.Error / ArgumentError; anything else fails
  # the test, and a VM crash ends the run, so passing at all shows the VM survived.
  use ExUnit.Case, async: false
  import Bitwise
  alias Mx.NIF

  @moduletag timeout: 180_000

  @dtypes Mx.Type.names()
  @calls_per_function 300
  # Under this limit huge shapes fail with Mx.Error at eval instead of asking the OS for terabytes.
  @memory_limit 64 <<< 20
  # Every result is evaluated; only results this small are also read back.
  @max_read_elements 200_000

  @unary_ops Mx.unary_ops()
  @binary_ops Mx.binary_ops()
  @reduce_ops [:sum, :product, :reduce_max, :reduce_min, :argmax, :argmin, :all, :any]
  @scan_ops [:cumulative_sum, :cumulative_product, :cumulative_max, :cumulative_min]
  @array_builders [:from_binary, :full, :iota, :arange, :linspace, :eye, :unary, :binary, :as_type, :select, :clip,
                   :reduce, :scan, :sort, :matmul, :reshape, :broadcast, :transpose, :squeeze, :new_axis, :reverse,
                   :concatenate, :stack, :slice, :pad, :take, :take_along_axis, :gather, :indexed, :trace_input,
                   :stop_gradient, :vjp, :vmap, :random, :linalg, :betainc, :fft] ++ [:bitcast]

  setup do
    before = Mx.Memory.report()
    threshold = NIF.set_dirty_threshold(65_536)
    NIF.set_dirty_threshold(threshold)
    Mx.Memory.set_memory_limit(@memory_limit)

    on_exit(fn ->
      Mx.Memory.set_memory_limit(before.memory_limit)
      Mx.Memory.set_cache_limit(before.cache_limit)
      NIF.set_dirty_threshold(threshold)
    end)

    %{globals: {before.cache_limit, threshold}}
  end

  test "every exported function survives thousands of random and malformed calls", %{globals: globals} do
    # A fixed seed; FUZZ_SEED=n replays another sequence when hunting bugs.
    :rand.seed(:exsss, {1, 2, String.to_integer(System.get_env("FUZZ_SEED", "3"))})
    funs = NIF.__info__(:functions)
    assert length(funs) > 40

    # Each result is evaluated: most at once, the rest lazily used by later calls
    # for a round and then evaluated together.
    {_pool, outcomes, messages} =
      Enum.reduce(1..@calls_per_function, {seed_pool(), %{}, []}, fn _, {pool, outcomes, messages} ->
        {pool, outcomes, messages, deferred} =
          Enum.reduce(Enum.shuffle(funs), {pool, outcomes, messages, []}, fn {name, arity}, {pool, outcomes, messages, deferred} ->
            args = name |> plausible_args(arity, pool) |> corrupt(pool)
            assert length(args) == arity
            {outcome, produced, msg} = call(name, args, globals)
            {now, later} = Enum.split_with(produced, fn _ -> chance(0.7) end)
            messages = Enum.reject([msg | Enum.map(now, &check_eval(name, &1))], &is_nil/1) ++ messages
            pool = Enum.reduce(produced, pool, &add_to_pool(&2, &1))
            {pool, Map.update(outcomes, {name, outcome}, 1, &(&1 + 1)), messages, Enum.map(later, &{name, &1}) ++ deferred}
          end)

        {pool, outcomes, check_deferred(deferred) ++ messages}
      end)

    # The fuzz is only worth something if it reaches both the success and the error paths.
    for name <- @array_builders do
      assert outcomes[{name, :ok}], "Mx.NIF.#{name} never succeeded under the fuzz"
      assert outcomes[{name, :raised}], "Mx.NIF.#{name} never raised under the fuzz"
    end

    # The compile API is reached past its argument checks, both ways.
    for name <- [:placeholder, :compile_capture, :compile_call, :compile_run, :tape_info] do
      assert outcomes[{name, :ok}], "Mx.NIF.#{name} never succeeded under the fuzz"
      assert outcomes[{name, :raised}], "Mx.NIF.#{name} never raised under the fuzz"
    end

    # Every engine error names an op in brackets ("[add] ...").
    unnamed = messages |> Enum.uniq() |> Enum.reject(&(&1 =~ ~r/^\[[a-z0-9_?]+\] /))
    assert unnamed == []
  end

  test "ops of the wrong family and unknown ops raise, naming the op" do
    a = Mx.tensor([1.0, 2.0]).ref
    families = [unary: @unary_ops, binary: @binary_ops, reduce: @reduce_ops, scan: @scan_ops, sort: [:sort, :argsort]]

    for op <- NIF.op_names(), {family, members} <- families, op not in members do
      e = assert_raise_any(fn -> family_call(family, op, a) end)

      case e do
        %Mx.Error{message: m} -> assert m =~ "[#{op}] is not a", m
        %ArgumentError{message: m} -> assert family == :sort and m =~ "[sort] op must be :sort or :argsort"
      end
    end

    for family <- Keyword.keys(families), op <- [:bogus, "add", nil, 3] do
      assert_raise ArgumentError, ~r/^\[#{family}\] (unknown op|op must be)/, fn -> family_call(family, op, a) end
    end
  end

  test "Mx.Error messages name the op in brackets, for every op family" do
    f = Mx.tensor([1.0, 2.0]).ref
    m = Mx.zeros({2, 3}).ref
    i = Mx.tensor([0]).ref
    key = Mx.Random.key(1).ref
    gone = Mx.tensor([1.0, 2.0]).ref
    NIF.dispose(gone)

    cases =
      Enum.map(@unary_ops, &{&1, fn -> NIF.unary(&1, gone) end}) ++
        Enum.map(@binary_ops, &{&1, fn -> NIF.binary(&1, m, f) end}) ++
        Enum.map(@reduce_ops, &{&1, fn -> NIF.reduce(&1, f, [1], false) end}) ++
        Enum.map(@scan_ops, &{&1, fn -> NIF.scan(&1, f, 1, false) end}) ++
        Enum.map([:sort, :argsort], &{&1, fn -> NIF.sort(&1, f, 1, false) end}) ++
        Enum.map([:cholesky, :inv, :det, :slogdet, :eigh, :eigvalsh], &{&1, fn -> NIF.linalg(&1, [m], []) end}) ++
        [
          full: fn -> NIF.full(:f32, {-1}, 0) end,
          iota: fn -> NIF.iota(:f32, {2}, 1) end,
          arange: fn -> NIF.arange(:f32, 0, 0, 3) end,
          linspace: fn -> NIF.linspace(:f32, 0, 1, 1 <<< 50, true) end,
          from_binary: fn -> NIF.from_binary(<<0>>, :f32, {1}) end,
          as_type: fn -> NIF.as_type(gone, :f64) end,
          select: fn -> NIF.select(m, f, f) end,
          matmul: fn -> NIF.matmul(m, m) end,
          reshape: fn -> NIF.reshape(m, {5}) end,
          broadcast: fn -> NIF.broadcast(m, {3, 3}) end,
          transpose: fn -> NIF.transpose(m, [0, 0]) end,
          squeeze: fn -> NIF.squeeze(m, [0]) end,
          new_axis: fn -> NIF.new_axis(m, 5) end,
          reverse: fn -> NIF.reverse(m, [3]) end,
          concatenate: fn -> NIF.concatenate([m, f], 0) end,
          stack: fn -> NIF.stack([m, f], 0) end,
          slice: fn -> NIF.slice(f, [0], [3], [1]) end,
          pad: fn -> NIF.pad(f, f, [0], [0], [0]) end,
          take: fn -> NIF.take(f, f, 0) end,
          take_along_axis: fn -> NIF.take_along_axis(m, i, 0) end,
          gather: fn -> NIF.gather(f, Mx.tensor([[0, 0]]).ref) end,
          indexed_add: fn -> NIF.indexed(false, f, i, f) end,
          indexed_put: fn -> NIF.indexed(true, f, i, f) end,
          random_normal: fn -> NIF.random(:random_normal, key, [f], :f32, {2}, []) end,
          random_gamma: fn -> NIF.random(:random_gamma, key, [f], :s64, {2}, []) end,
          solve: fn -> NIF.linalg(:solve, [m, f], []) end,
          trace: fn -> NIF.linalg(:trace, [f], [0]) end,
          cross: fn -> NIF.linalg(:cross, [m, m], [0]) end,
          betainc: fn -> NIF.betainc(m, f, f) end,
          vjp: fn -> NIF.vjp([f], [m], [f]) end,
          eval: fn -> NIF.eval([gone]) end
        ]

    for {op, fun} <- cases do
      e = assert_raise(Mx.Error, fun)
      assert String.starts_with?(e.message, "[#{op}] "), "#{op}: #{e.message}"
    end
  end

  test "out-of-range axes raise Mx.Error naming the op" do
    a = Mx.zeros({2, 3}).ref

    for axis <- [2, 3, -3, 8, -9] do
      assert_raise Mx.Error, ~r/^\[sum\] axis #{axis} is out of range/, fn -> NIF.reduce(:sum, a, [axis], false) end
      assert_raise Mx.Error, ~r/^\[cumulative_max\] axis/, fn -> NIF.scan(:cumulative_max, a, axis, false) end
      assert_raise Mx.Error, ~r/^\[argsort\] axis/, fn -> NIF.sort(:argsort, a, axis, true) end
      assert_raise Mx.Error, ~r/^\[transpose\] axis/, fn -> NIF.transpose(a, [0, axis]) end
      assert_raise Mx.Error, ~r/^\[squeeze\] axis/, fn -> NIF.squeeze(a, [axis]) end
      assert_raise Mx.Error, ~r/^\[reverse\] axis/, fn -> NIF.reverse(a, [axis]) end
      assert_raise Mx.Error, ~r/^\[take\] axis/, fn -> NIF.take(a, Mx.tensor([0]).ref, axis) end
      assert_raise Mx.Error, ~r/^\[concatenate\] axis/, fn -> NIF.concatenate([a, a], axis) end
    end

    # Axes beyond any rank are rejected while decoding, before the engine sees them.
    for axes <- [[1 <<< 40], [1 <<< 70], [0, :x], [0 | 1], List.duplicate(0, 9)] do
      assert_raise ArgumentError, ~r/^\[sum\] axes must be/, fn -> NIF.reduce(:sum, a, axes, false) end
    end
  end

  test "disposed arrays and graphs over disposed inputs raise Mx.Error, never crash" do
    a = Mx.iota({2, 3}, type: :f32)
    Mx.eval(a)
    b = Mx.add(a, 1.0)
    c = Mx.multiply(b, 2.0)
    Mx.dispose(a)

    assert NIF.state(a.ref) == :disposed
    refute Mx.evaluated?(a)
    assert Mx.dispose(a) == :ok
    assert_raise Mx.Error, ~r/^\[(to_binary|eval)\] the array was disposed/, fn -> Mx.to_binary(a) end
    assert_raise Mx.Error, ~r/^\[eval\] the array was disposed/, fn -> Mx.eval(a) end
    assert_raise Mx.Error, ~r/^\[add\] input 0 was disposed/, fn -> Mx.eval(c) end
    assert_raise Mx.Error, ~r/disposed/, fn -> Mx.to_list(c) end

    # Every op constructor refuses a disposed input.
    r = a.ref
    i = Mx.tensor([0]).ref

    builders = [
      fn -> NIF.unary(:negate, r) end,
      fn -> NIF.binary(:add, r, r) end,
      fn -> NIF.as_type(r, :f64) end,
      fn -> NIF.select(r, r, r) end,
      fn -> NIF.betainc(r, r, r) end,
      fn -> NIF.clip(r, r, r) end,
      fn -> NIF.reduce(:sum, r, nil, false) end,
      fn -> NIF.scan(:cumulative_sum, r, 0, false) end,
      fn -> NIF.sort(:sort, r, 0, false) end,
      fn -> NIF.matmul(r, Mx.zeros({3, 2}).ref) end,
      fn -> NIF.reshape(r, {6}) end,
      fn -> NIF.broadcast(r, {4, 2, 3}) end,
      fn -> NIF.transpose(r, nil) end,
      fn -> NIF.squeeze(r, nil) end,
      fn -> NIF.new_axis(r, 0) end,
      fn -> NIF.reverse(r, nil) end,
      fn -> NIF.concatenate([r, r], 0) end,
      fn -> NIF.stack([r], 0) end,
      fn -> NIF.slice(r, [0, 0], [1, 1], [1, 1]) end,
      fn -> NIF.pad(r, Mx.tensor(0.0).ref, [1, 1], [1, 1], [0, 0]) end,
      fn -> NIF.take(r, i, 0) end,
      fn -> NIF.take_along_axis(r, Mx.zeros({1, 3}, type: :s64).ref, 0) end,
      fn -> NIF.gather(r, Mx.tensor([[0, 0]]).ref) end,
      fn -> NIF.indexed(true, r, Mx.tensor([[0, 0]]).ref, Mx.tensor([1.0]).ref) end
    ]

    for build <- builders, do: assert_raise(Mx.Error, ~r/disposed/, build)

    # A node evaluated before its input was disposed keeps its own data.
    x = Mx.tensor([1, 2, 3])
    y = x |> Mx.multiply(10) |> Mx.eval()
    Mx.dispose(x)
    assert Mx.to_list(y) == [10, 20, 30]

    # Disposing an intermediate of a pending graph breaks only that graph.
    p = Mx.tensor([1.0, 2.0])
    q = Mx.exp(p)
    s = Mx.sum(q)
    Mx.dispose(q)
    assert_raise Mx.Error, ~r/disposed/, fn -> Mx.eval(s) end
    assert Mx.to_list(Mx.add(p, 1.0)) == [2.0, 3.0]
  end

  test "out-of-bounds indices raise at eval, every time, and leave the engine usable" do
    a = Mx.tensor([[1, 2, 3], [4, 5, 6]])

    lazy = [
      {"take", Mx.take(a, Mx.tensor([0, 3]), axis: 1)},
      {"take", Mx.take(a, Mx.tensor([-1]))},
      {"take_along_axis", Mx.take_along_axis(a, Mx.tensor([[0], [2 <<< 40]]), axis: 1)},
      {"gather", Mx.gather(a, Mx.tensor([[1, 0], [2, 0]]))},
      {"gather", Mx.gather(a, Mx.tensor([[0, -1]]))},
      {"indexed_add", Mx.indexed_add(a, Mx.tensor([[2]]), Mx.tensor([[1, 1, 1]]))},
      {"indexed_put", Mx.indexed_put(a, Mx.tensor([[0, 3]]), Mx.tensor([9]))}
    ]

    for {op, x} <- lazy do
      refute Mx.evaluated?(x)
      # A failed node goes back to pending, so a second eval raises again.
      for _ <- 1..2, do: assert_raise(Mx.Error, ~r/^\[#{op}\] index -?\d+ is out of bounds/, fn -> Mx.eval(x) end)
      refute Mx.evaluated?(x)
    end

    assert Mx.to_list(Mx.take(a, Mx.tensor([2, 0]), axis: 1)) == [[3, 1], [6, 4]]
  end

  test "huge, negative and over-rank shapes raise instead of allocating" do
    for shape <- [{-1}, {3, -2}, {1 <<< 40, 1 <<< 40}, {1 <<< 62, 4}, {1 <<< 47}] do
      assert_raise Mx.Error, ~r/^\[full\] shape /, fn -> NIF.full(:f32, shape, 1.0) end
    end

    # An empty array may have any other dimension: it holds no data.
    assert Mx.to_list(Mx.full({0, 1 <<< 62}, 1.0)) == []

    for shape <- [List.to_tuple(List.duplicate(1, 9)), {1 <<< 64}, {1.0}, {:a}, :a, "12"] do
      assert_raise ArgumentError, ~r/^\[full\] shape must be a tuple of at most 8 integers/, fn -> NIF.full(:f32, shape, 0) end
    end

    # Lazily huge: building is fine, evaluating hits the memory limit.
    big = Mx.broadcast(Mx.tensor(1.0), {1 <<< 20, 1 <<< 20})
    assert big.shape == {1 <<< 20, 1 <<< 20}
    assert_raise Mx.Error, ~r/memory limit reached/, fn -> Mx.eval(big) end
    assert_raise Mx.Error, ~r/memory limit reached/, fn -> Mx.to_binary(Mx.sum(big)) end
  end

  # (stop - start + stride - 1) / stride would overflow int64 here: the axis must still have one element.
  test "a slice with a stride near 2^63 takes one element" do
    a = Mx.iota({4})
    assert Mx.to_list(Mx.Array.wrap(NIF.slice(a.ref, [1], [4], [(1 <<< 63) - 1]))) == [1]
  end

  # ---- calling -------------------------------------------------------------------------

  defp call(name, args, globals) do
    result =
      try do
        {:ok, apply(NIF, name, args)}
      rescue
        e in [Mx.Error, ArgumentError] -> {:raised, e}
        e -> flunk("Mx.NIF.#{name}(#{describe_args(args)}) raised #{inspect(e.__struct__)}: #{Exception.message(e)}")
      catch
        kind, value -> flunk("Mx.NIF.#{name}(#{describe_args(args)}) #{kind}: #{inspect(value)}")
      end

    restore_globals(name, globals)

    case result do
      {:ok, value} ->
        arrays = arrays_in(value)
        for {_ref, shape, type} <- arrays, do: assert(is_tuple(shape) and tuple_size(shape) <= 8 and type in @dtypes)
        {:ok, arrays, nil}

      {:raised, %{message: m} = e} ->
        assert is_binary(m) and m != ""
        {:raised, [], if(is_struct(e, Mx.Error), do: m)}
    end
  end

  # The arrays in a NIF's result: one, a tuple of them (linalg), or a list (vjp, vmap's {array, batched?}).
  defp arrays_in({{ref, w}, shape, type, _id} = arr) when is_reference(ref) and is_binary(w) and is_tuple(shape) and is_atom(type), do: [arr]
  defp arrays_in({arr, batched}) when is_boolean(batched), do: arrays_in(arr)
  defp arrays_in(list) when is_list(list), do: Enum.flat_map(list, &arrays_in/1)
  defp arrays_in(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> Enum.flat_map(&arrays_in/1)
  defp arrays_in(_), do: []

  # Evaluates a result: it must succeed with the right byte count or raise Mx.Error,
  # whose message is returned.
  defp check_eval(name, {ref, shape, type, _id}) do
    try do
      assert NIF.eval([ref]) == :ok
      assert NIF.state(ref) == :evaluated

      if elements(shape) <= @max_read_elements do
        bin = NIF.to_binary(ref)
        assert byte_size(bin) == elements(shape) * Mx.Type.byte_size(type), "Mx.NIF.#{name} gave a wrong-sized buffer"
      end

      nil
    rescue
      e in Mx.Error -> e.message
    end
  end

  # Deferred results: one eval over all of them (a failing root fails it), then each alone.
  defp check_deferred(deferred) do
    try do
      NIF.eval(Enum.map(deferred, fn {_, {ref, _, _, _}} -> ref end))
    rescue
      _ in Mx.Error -> :ok
    end

    deferred |> Enum.map(fn {name, arr} -> check_eval(name, arr) end) |> Enum.reject(&is_nil/1)
  end

  defp restore_globals(name, {cache_limit, threshold}) do
    case name do
      :set_memory_limit -> Mx.Memory.set_memory_limit(@memory_limit)
      :set_cache_limit -> Mx.Memory.set_cache_limit(cache_limit)
      :set_dirty_threshold -> NIF.set_dirty_threshold(threshold)
      _ -> :ok
    end
  end

  defp family_call(:unary, op, a), do: NIF.unary(op, a)
  defp family_call(:binary, op, a), do: NIF.binary(op, a, a)
  defp family_call(:reduce, op, a), do: NIF.reduce(op, a, nil, false)
  defp family_call(:scan, op, a), do: NIF.scan(op, a, 0, false)
  defp family_call(:sort, op, a), do: NIF.sort(op, a, 0, false)

  defp assert_raise_any(fun) do
    try do
      fun.()
      flunk("expected Mx.Error or ArgumentError")
    rescue
      e in [Mx.Error, ArgumentError] -> e
    end
  end

  defp describe_args(args), do: args |> Enum.map(&inspect(&1, limit: 8, printable_limit: 16)) |> Enum.join(", ")

  # ---- the pool of arrays calls draw from -----------------------------------------------

  @pool_size 96

  defp seed_pool do
    shapes = [{}, {3}, {2, 3}, {0}, {2, 0, 3}, {1, 4}, {4, 1, 2}]
    data = for t <- @dtypes, s <- shapes, do: random_array(t, s)
    lazy = for t <- Enum.take_random(@dtypes, 6), do: NIF.full(t, {2, 2}, 3)
    iotas = [NIF.iota(:s64, {5}, nil), NIF.iota(:f32, {3, 4}, 1), NIF.iota(:s64, {70_000}, nil)]

    disposed = for t <- [:f32, :s64], do: tap(random_array(t, {3}), &NIF.dispose(elem(&1, 0)))

    orphaned =
      for t <- [:f64, :u8] do
        {r, _, _, _} = x = random_array(t, {2, 2})
        y = NIF.binary(:add, r, r)
        NIF.dispose(r)
        [x, y]
      end

    data ++ lazy ++ iotas ++ disposed ++ List.flatten(orphaned)
  end

  defp add_to_pool(pool, arr) when length(pool) < @pool_size, do: [arr | pool]
  defp add_to_pool(pool, arr), do: List.replace_at(pool, :rand.uniform(@pool_size) - 1, arr)

  defp random_array(type, shape) do
    NIF.from_binary(:rand.bytes(elements(shape) * Mx.Type.byte_size(type)), type, shape)
  end

  # Generated shapes may be malformed; those count as too large to make data for.
  defp elements(shape) when is_tuple(shape), do: elements(Tuple.to_list(shape))
  defp elements(dims) when is_list(dims), do: if(Enum.all?(dims, &is_integer/1), do: Enum.reduce(dims, 1, &(&1 * &2)), else: 1 <<< 80)
  defp elements(_), do: 1 <<< 80

  # ---- argument generators --------------------------------------------------------------

  defp pick(list), do: Enum.at(list, :rand.uniform(length(list)) - 1)
  defp chance(p), do: :rand.uniform() < p
  defp small(n), do: :rand.uniform(n + 1) - 1

  # Replaces each argument by a wrong term now and then.
  defp corrupt(args, pool), do: Enum.map(args, &if(chance(0.1), do: junk(pool), else: &1))

  defp junk(pool) do
    {ref, _, _, _} = pool |> Enum.filter(fn {_, s, _, _} -> elements(s) <= 64 end) |> pick()

    pick([
      fn -> pick([:foo, nil, true, false, :nan, :infinity, :f32, :add, :"日本語", String.to_atom(String.duplicate("x", 255))]) end,
      fn -> pick([<<1::size(3)>>, <<0, 1::size(9)>>]) end,
      fn -> pick([[ref | ref], [[ref]], List.duplicate(ref, 9)]) end,
      fn -> self() end,
      fn -> make_ref() end,
      fn -> %{a: 1} end,
      fn -> pick([1.5, -0.0, 1.0e308]) end,
      fn -> pick([-1, 0, 7, 1 <<< 31, 1 <<< 63, -(1 <<< 63) - 1, 1 <<< 70, -(1 <<< 70)]) end,
      fn -> :rand.bytes(small(16)) end,
      fn -> pick([{}, {1, :a}, [], [1, 2.5], [1 | 2], {1 <<< 70}]) end,
      fn -> fn -> :ok end end,
      # look-alikes of an array: its parts, a copied weight, a foreign handle, a round trip, the struct
      fn -> elem(ref, 0) end,
      fn -> elem(ref, 1) end,
      fn -> {elem(ref, 0), :binary.copy(elem(ref, 1))} end,
      fn -> {make_ref(), elem(ref, 1)} end,
      fn -> {elem(ref, 0)} end,
      fn -> :erlang.binary_to_term(:erlang.term_to_binary(ref)) end,
      fn -> %Mx.Array{ref: ref, shape: {}, type: :f32, id: 0} end,
      fn -> {ref, {}, :f32} end
    ]).()
  end

  defp arr(pool), do: elem(pick(pool), 0)
  defp arr_entry(pool), do: pick(pool)

  defp dtype, do: if(chance(0.9), do: pick(@dtypes), else: pick([:f8, {:f, 32}, "f32", nil, :pred]))

  defp dim do
    if chance(0.9), do: small(4), else: pick([-1, 5, 70_000, 1 <<< 31, 1 <<< 40, 1 <<< 62, 1 <<< 70])
  end

  defp shape do
    case :rand.uniform(10) do
      n when n <= 7 -> List.to_tuple(for _ <- 1..pick([0, 1, 1, 2, 2, 3, 4])//1, do: small(4))
      8 -> List.to_tuple(for _ <- 1..pick([1, 2, 3]), do: dim())
      _ -> pick([{-1}, {1 <<< 40, 1 <<< 40}, List.to_tuple(List.duplicate(1, 9)), {2, 2, 2, 2, 2, 2, 2, 2}, {70_000},
                 {1.0}, {:a}, [2, 3], {0, 1 <<< 62}, {}])
    end
  end

  defp number do
    pick([0, 1, -3, 2.5, -0.0, 1.0e300, -1.0e-310, :nan, :infinity, :neg_infinity, 1 <<< 62, 1 <<< 70, :foo, "1"])
  end

  defp count, do: if(chance(0.85), do: small(12), else: pick([-1, 70_000, 1 <<< 40, 1 <<< 70, 2.0]))

  defp axis(rank), do: if(chance(0.85), do: small(2 * rank + 2) - rank - 1, else: pick([1 <<< 31, 1 <<< 70, 1.0, :x, nil]))

  defp axes(rank) do
    perm = Enum.shuffle(Enum.to_list(0..(rank - 1)//1))

    case :rand.uniform(9) do
      1 -> nil
      2 -> []
      3 -> Enum.take(perm, max(rank - 1, 0))
      4 -> Enum.map(perm, &if(chance(0.5), do: &1 - rank, else: &1))
      5 -> [0, 0]
      6 -> [rank]
      7 -> pick([List.duplicate(0, 9), [0 | 1], [1 <<< 40], {0}, [:a]])
      _ -> perm
    end
  end

  defp op(family) do
    cond do
      chance(0.75) -> pick(family)
      chance(0.7) -> pick(NIF.op_names())
      true -> pick([:bogus, "add", nil, 1])
    end
  end

  defp bool, do: if(chance(0.95), do: chance(0.5), else: pick([nil, 1, :yes]))

  defp limit, do: pick([0, 1024, 1 <<< 30, :infinity, -1, 1 <<< 70, :foo, 1.5])

  # Index arrays: mostly in [0, dim), sometimes just outside, sometimes not integers.
  defp indices(dim, shape) do
    shape = bounded(shape)
    n = elements(shape)
    values = for _ <- 1..n//1, do: if(chance(0.85) and dim > 0, do: small(dim - 1), else: pick([-1, dim, dim + 5, -(1 <<< 62)]))
    ref = NIF.from_binary(for(v <- values, into: <<>>, do: <<v::signed-64-native>>), :s64, shape)
    if chance(0.85), do: ref, else: NIF.as_type(elem(ref, 0), pick([:u8, :s32, :f32, :bool]))
  end

  defp same_shape_arrays(pool) do
    {_, s, _, _} = arr_entry(pool)
    for _ <- 1..(1 + small(3)), do: elem(NIF.full(pick(@dtypes), s, 1), 0)
  end

  # Mostly well-formed arguments, so calls get past decoding into the engine. A
  # generator may itself hit a disposed pool array; then the call gets generic terms.
  defp plausible_args(name, arity, pool) do
    args =
      try do
        args_for(name, pool)
      rescue
        _ in [Mx.Error, ArgumentError, CaseClauseError] -> nil
      end

    if is_list(args) and length(args) == arity, do: args, else: for(_ <- 1..arity//1, do: generic(pool))
  end

  defp generic(pool) do
    pick([fn -> arr(pool) end, fn -> [arr(pool), arr(pool)] end, fn -> dtype() end, fn -> shape() end,
          fn -> number() end, fn -> axes(2) end, fn -> bool() end, fn -> junk(pool) end]).()
  end

  defp args_for(name, pool) do
    {a, s, t, _} = arr_entry(pool)
    r = if is_tuple(s), do: tuple_size(s), else: 0

    case name do
      :from_binary ->
        {ty, sh} = {dtype(), shape()}

        bytes =
          if ty in @dtypes and is_tuple(sh) and Enum.all?(Tuple.to_list(sh), &(is_integer(&1) and &1 in 0..10_000)) and chance(0.8),
            do: :rand.bytes(elements(sh) * Mx.Type.byte_size(ty)),
            else: :rand.bytes(small(40))

        [bytes, ty, sh]

      :full -> [dtype(), shape(), number()]
      :iota -> [dtype(), shape(), if(chance(0.5), do: nil, else: axis(3))]
      :arange -> [dtype(), number(), number(), count()]
      :linspace -> [dtype(), number(), number(), count(), bool()]
      :eye -> [dtype(), count(), count()]
      :unary -> [op(@unary_ops), a]
      :binary -> [op(@binary_ops), a, arr(pool)]
      :as_type -> [a, dtype()]
      :bitcast -> [a, dtype()]
      :select -> [arr(pool), a, arr(pool)]
      :clip -> [a, arr(pool), arr(pool)]
      :reduce -> [op(@reduce_ops), a, axes(r), bool()]
      :scan -> [op(@scan_ops), a, axis(r), bool()]
      :sort -> [op([:sort, :argsort]), a, axis(r), bool()]
      :matmul -> matmul_args(pool)
      :reshape -> [a, reshape_target(s)]
      :broadcast -> [a, broadcast_target(s)]
      :transpose -> [a, axes(r)]
      :squeeze -> [a, axes(r)]
      :new_axis -> [a, axis(r + 1)]
      :reverse -> [a, axes(r)]
      :concatenate -> [join_list(pool), axis(2)]
      :stack -> [join_list(pool), axis(2)]
      :slice -> slice_args(a, s)
      :pad -> pad_args(a, s, t, pool)
      :take -> [a, elem(indices(if(r > 0, do: elem(s, 0), else: 1), shape_small()), 0), axis(r)]
      :take_along_axis -> take_along_args(a, s)
      :gather -> gather_args(a, s)
      :indexed -> indexed_args(a, s, t)
      :eval -> [Enum.map(1..small(3)//1, fn _ -> arr(pool) end)]
      :eval_dirty -> [Enum.map(1..small(3)//1, fn _ -> arr(pool) end)]
      :to_binary -> [a]
      :evaluated? -> [a]
      :state -> [a]
      :dispose -> if(chance(0.3), do: [a], else: [elem(NIF.full(:f32, {2}, 1), 0)])
      :set_cache_limit -> [limit()]
      :set_memory_limit -> [limit()]
      :set_dirty_threshold -> [pick([0, 1, 65_536, 1 <<< 62, -1, :foo])]
      :trace_input -> [a]
      :stop_gradient -> [a]
      :vjp -> vjp_args(a, pool)
      :vmap -> vmap_args(pool)
      :random -> random_args(pool)
      :linalg -> linalg_args(pool)
      :fft -> [op([:fft, :ifft, :rfft, :irfft]), a, axis(r), pick([nil, nil, 1, small(9), 0, -1, 1 <<< 41, 2.0]),
               pick([:backward, :ortho, :forward, :forward, :bogus])]
      :betainc -> [a, arr(pool), arr(pool)]
      :placeholder -> [dtype(), shape()]
      :compile_cache -> [pick([1, 2, 32, 0, -1, 1 <<< 20, :x])]
      :compile_capture -> capture_args(pool)
      :compile_fallback -> [cache(), key()]
      :compile_call -> [cache(), key(), compile_inputs(pool)]
      :compile_run -> [tape(pool, {a, s, t}), if(chance(0.5), do: [a], else: compile_inputs(pool))]
      :compile_stats -> [cache()]
      :tape_info -> [tape(pool)]
      # the native tier: MX_JIT=0 or a missing compiler, so the fuzz starts no compiler
      :tape_jit -> [tape(pool), pick([["0", nil, nil, nil, nil, nil], [nil, "/nonexistent/cc", nil, nil, nil, nil], [nil], junk(pool)])]
      :tape_jit_info -> [tape(pool)]
      :tape_jit_wait -> [tape(pool), pick([0, 1, 5, -1, :x, 1 <<< 40])]
      :tape_jit_source -> [tape(pool)]
      :compile_lookup -> [cache(), key()]
      # convolution and window reductions: per-axis lists, mostly of the right length and small
      :conv -> [a, arr(pool), per_axis(r - 2), per_axis(r - 2, -2), per_axis(r - 2, -2), per_axis(r - 2), per_axis(r - 2), small(3), small(3)]
      :window -> [op([:window_sum, :window_product, :window_max, :window_min]), a, per_axis(r), per_axis(r), per_axis(r, -2), per_axis(r, -2), per_axis(r)]
      :window_scatter -> [op([:window_scatter_max, :window_scatter_min]), a, arr(pool), arr(pool), per_axis(r), per_axis(r), per_axis(r, -2), per_axis(r, -2)]
      # quantization: MLX's schemes, mostly valid group sizes and bits
      :quantize -> [a, pick([32, 64, 128, 16, 0, -1, :x]), pick([2, 4, 8, 3, 0, :x])]
      :dequantize -> [a, arr(pool), arr(pool), pick([32, 64, 128, 16, 0]), pick([2, 4, 8, 3, 0])]
      :quantized_matmul -> [a, arr(pool), arr(pool), arr(pool), pick([true, false, nil]), pick([32, 64, 128, 0]), pick([2, 4, 8, 5])]
      # fused attention: q, k, v, mask (nil, :causal or an array), scale
      :scaled_dot_product_attention -> [a, arr(pool), arr(pool), pick([nil, :causal, arr(pool), :bogus]), pick([0.5, 1, -2.0, :nan, :x])]
      zero when zero in [:memory_report, :reset_peak, :clear_cache, :op_names, :op_grads, :noop, :noop_dirty, :load] -> []
    end
  end

  # n integers in [lo, 3] (sometimes a wrong count or a junk value).
  defp per_axis(n, lo \\ 1) do
    n = if chance(0.9), do: Kernel.max(n, 0), else: small(4)
    list = for _ <- 1..n//1, do: lo + small(3 - lo)
    if chance(0.95), do: list, else: pick([[0 | list], [:x], nil, 1 <<< 62])
  end

  # ---- compile: caches, signature keys and tapes, mostly well formed ----

  # Mostly one shared cache, so calls find what captures stored and replay it on random inputs.
  defp cache do
    shared = Process.get(:fuzz_compile_cache) || tap(NIF.compile_cache(2), &Process.put(:fuzz_compile_cache, &1))

    cond do
      chance(0.7) -> shared
      chance(0.7) -> NIF.compile_cache(1 + small(3))
      true -> pick([make_ref(), :cache, nil])
    end
  end

  defp key, do: if(chance(0.9), do: pick(["a", "b", <<>>, :rand.bytes(small(40))]), else: pick([:a, 1, nil]))
  defp compile_inputs(pool), do: if(chance(0.85), do: Enum.map(1..small(2)//1, fn _ -> arr(pool) end), else: junk(pool))

  # Placeholders, outputs built on them (or on pool arrays, or on foreign placeholders), a template.
  defp capture_args(pool) do
    {_, s, t, _} = arr_entry(pool)
    {hr, _, _, _} = NIF.placeholder(t, s)
    out = if chance(0.6), do: NIF.unary(pick(@unary_ops), hr), else: NIF.binary(pick(@binary_ops), hr, arr(pool))
    holders = pick([[hr], [hr], [], [hr, hr], [arr(pool)], [elem(NIF.placeholder(:f32, {2}), 0)]])
    foreign = elem(NIF.unary(:exp, elem(NIF.placeholder(:f32, {}), 0)), 0)
    outs = pick([[elem(out, 0)], [elem(out, 0), hr], [arr(pool)], [], [foreign]])
    [cache(), key(), holders, outs, pick([:"$mx_array", [:"$mx_array"], nil])]
  end

  # A tape: captured from a small graph over one placeholder shaped like a pool array.
  defp tape(pool, entry \\ nil) do
    {_, s, t} = entry || (pool |> arr_entry() |> Tuple.delete_at(3))

    try do
      {hr, _, _, _} = NIF.placeholder(t, s)
      {o, _, _, _} = NIF.unary(pick(@unary_ops), hr)
      if chance(0.9), do: NIF.compile_capture(NIF.compile_cache(1), "k", [hr], [o], :"$mx_array"), else: junk(pool)
    rescue
      _ in [Mx.Error, ArgumentError] -> junk(pool)
    end
  end

  defp vjp_args(a, pool) do
    x = elem(NIF.trace_input(a), 0)
    out = if chance(0.5), do: NIF.unary(pick(@unary_ops), x), else: NIF.reduce(pick(@reduce_ops), x, nil, false)
    {o, os, ot, _} = out
    cot = if chance(0.8), do: elem(NIF.full(ot, os, 1), 0), else: arr(pool)
    wrt = pick([[x], [x, x], [arr(pool)], []])
    cots = if chance(0.9), do: [cot], else: [cot, cot]
    [[o], cots, wrt]
  end

  defp vmap_args(pool) do
    {_, s, t, _} = arr_entry(pool)
    b = small(3)
    holder = elem(NIF.trace_input(elem(NIF.full(t, s, 0), 0)), 0)
    out = if chance(0.5), do: NIF.unary(pick(@unary_ops), holder), else: NIF.binary(pick(@binary_ops), holder, arr(pool))
    lead = if chance(0.9), do: b, else: b + 1
    input = if chance(0.8), do: elem(random_array(t, bounded(List.to_tuple([lead | Tuple.to_list(s)]))), 0), else: arr(pool)
    [[elem(out, 0)], if(chance(0.9), do: [holder], else: []), [input], if(chance(0.9), do: b, else: pick([-1, 1 <<< 40]))]
  end

  defp random_args(pool) do
    ops = NIF.op_names() |> Enum.filter(&String.starts_with?(Atom.to_string(&1), "random_"))
    op = op(ops)
    key = if chance(0.8), do: Mx.Random.key(small(1000)).ref, else: arr(pool)
    # {parameter count, parameter dtype, output dtypes} for each random primitive
    {n, ptype, types} =
      case op do
        :random_bits -> {small(1), :u32, [:u32, :u64, :f32, :f64]}
        :random_normal -> {0, :f32, [:f32, :f64, :bf16]}
        :random_randint -> {2, :s64, [:s64, :s32, :u8]}
        g when g in [:random_gamma, :random_poisson] -> {1, :f32, [:f32, :f64, :s64]}
        _ -> {2, :f32, [:f32, :f64]}
      end

    n = if chance(0.9), do: n, else: small(3)
    pshape = cond do
      ptype == :u32 and chance(0.9) -> {2}
      chance(0.8) -> {}
      true -> shape_small()
    end
    params = for _ <- 1..n//1, do: if(chance(0.8), do: elem(NIF.full(ptype, pshape, 1 + small(5)), 0), else: arr(pool))
    flags = if chance(0.8), do: [], else: pick([[:open], [:log], [:open, :log], [:bogus], [:open, :log, :open]])
    type = if chance(0.9), do: pick(types), else: dtype()
    [op, key, params, type, if(chance(0.8), do: shape_small(), else: shape()), flags]
  end

  @linalg_funs [:cholesky, :solve, :triangular_solve, :inv, :det, :slogdet, :qr, :svd, :svdvals, :eigh, :eigvalsh,
                :norm, :cross, :outer, :trace, :diag, :diagonal]

  defp linalg_args(pool) do
    fun = if chance(0.95), do: pick(@linalg_funs), else: pick([:bogus, "inv", nil])

    matrix = fn ->
      n = small(4)
      shape = if chance(0.8), do: {n, n}, else: shape()
      t = pick([:f32, :f64, :f32, :s64, :f16])

      if chance(0.7) and is_tuple(shape) and elements(shape) <= 100 do
        values = for _ <- 1..elements(shape)//1, do: :rand.normal()
        elem(NIF.as_type(elem(NIF.from_binary(for(v <- values, into: <<>>, do: <<v::float-64-native>>), :f64, shape), 0), t), 0)
      else
        arr(pool)
      end
    end

    n = if(fun in [:solve, :triangular_solve, :cross, :outer], do: 2, else: 1)
    arrays = for _ <- 1..(if chance(0.9), do: n, else: pick([0, 1, 2, 3]))//1, do: matrix.()
    n = %{triangular_solve: 4, norm: 3, svd: 1, cross: 1, trace: 1, diag: 1, diagonal: 1}[fun] || 0
    n = if chance(0.85), do: n, else: small(5)
    params = for _ <- 1..n//1, do: pick([0, 1, 1, 0, -1, 2, 1.5, :infinity, :neg_infinity, :nan, 1 <<< 53, 1 <<< 62])
    [fun, arrays, params]
  end

  defp shape_small, do: List.to_tuple(for _ <- 1..small(2)//1, do: small(3))

  defp matmul_args(pool) do
    if chance(0.6) do
      [m, k, n] = for _ <- 1..3, do: small(4)
      batch = if chance(0.3), do: [1 + small(2)], else: []
      t = pick([:f32, :f64, :s32, :bool, :u8, :f16])
      a_shape = if chance(0.2), do: {k}, else: List.to_tuple(batch ++ [m, k])
      b_shape = if chance(0.2), do: {if(chance(0.9), do: k, else: k + 1)}, else: {k, n}
      [elem(random_array(t, a_shape), 0), elem(random_array(pick([t, :f64]), b_shape), 0)]
    else
      [arr(pool), arr(pool)]
    end
  end

  defp reshape_target(s) do
    n = elements(s)

    pick([{n}, {-1}, {1, n}, {n, -1}, {-1, -1}, {n + 1}, shape(), {1, 1, 1, 1, 1, 1, 1, 1, n}, {0, -1}])
  end

  defp broadcast_target(s) do
    dims = Tuple.to_list(s) |> Enum.map(&if(&1 == 1 and chance(0.5), do: small(3), else: &1))
    if chance(0.7), do: List.to_tuple(Enum.map(1..small(2)//1, fn _ -> small(3) end) ++ dims), else: shape()
  end

  defp join_list(pool) do
    case :rand.uniform(6) do
      1 -> []
      2 -> List.duplicate(arr(pool), pick([4096, 4097]))
      3 -> [arr(pool), arr(pool)]
      _ -> same_shape_arrays(pool)
    end
  end

  defp slice_args(a, s) do
    dims = Tuple.to_list(s)
    n = if chance(0.9), do: length(dims), else: length(dims) + 1
    dims = Enum.take(dims ++ [1], n)
    starts = Enum.map(dims, &(small(&1 + 1) - if(chance(0.05), do: 2, else: 0)))
    stops = Enum.zip_with(starts, dims, fn st, d -> if chance(0.9), do: max(st, 0) + small(max(d - st, 0)), else: d + 1 end)
    strides = Enum.map(dims, fn _ -> if chance(0.9), do: 1 + small(2), else: pick([0, -1, 1 <<< 62]) end)
    [a, starts, stops, strides]
  end

  defp pad_args(a, s, t, pool) do
    r = tuple_size(s)
    value = if chance(0.8), do: elem(NIF.full(if(chance(0.8), do: t, else: pick(@dtypes)), {}, 7), 0), else: arr(pool)
    wild = fn -> pick([1 <<< 40, -(1 <<< 40), (1 <<< 40) + 1, 1 <<< 62]) end
    lo = for _ <- 1..r//1, do: if(chance(0.95), do: small(6) - 3, else: wild.())
    hi = for _ <- 1..r//1, do: if(chance(0.95), do: small(6) - 3, else: wild.())
    interior = for _ <- 1..r//1, do: if(chance(0.95), do: small(2), else: pick([-1, 1 <<< 40]))
    [a, value, lo, hi, interior]
  end

  defp take_along_args(a, s) do
    r = tuple_size(s)
    ax = if r > 0, do: small(r - 1), else: 0
    dim = if r > 0, do: elem(s, ax), else: 1
    idx_shape = if r > 0 and chance(0.9), do: put_elem(s, ax, small(3)), else: shape_small()
    [a, elem(indices(dim, idx_shape), 0), if(chance(0.9), do: ax, else: axis(r))]
  end

  defp gather_args(a, s) do
    r = tuple_size(s)
    k = if chance(0.9), do: small(r), else: r + 1
    n = small(3)
    dim = if r > 0, do: Enum.min(Tuple.to_list(s)), else: 1
    idx = if chance(0.9), do: indices(dim, {n, k}), else: indices(dim, shape_small())
    [a, elem(idx, 0)]
  end

  defp indexed_args(a, s, t) do
    r = tuple_size(s)
    k = if chance(0.9), do: small(r), else: r + 1
    n = small(3)
    dim = if r > 0, do: Enum.min(Tuple.to_list(s)), else: 1
    idx = if chance(0.9), do: indices(dim, {n, k}), else: indices(dim, shape_small())
    rest = s |> Tuple.to_list() |> Enum.drop(k)
    upd_shape = if chance(0.85), do: List.to_tuple([n | rest]), else: shape_small()
    upd_type = if chance(0.8), do: t, else: pick(@dtypes)
    [bool(), a, elem(idx, 0), elem(random_array(upd_type, bounded(upd_shape)), 0)]
  end

  # Pool arrays may be lazily huge; data made in Elixir for them stays small.
  defp bounded(shape), do: if(elements(shape) in 0..100_000 and tuple_size(shape) <= 8, do: shape, else: shape_small())
end
