defmodule Mx.SchedulingTest do
  # Issue 9: deep native code never on a scheduler's stack, no normal-scheduler call over
  # ~1 ms, abandoned work cancelled, O(1) hashing and serializing of array terms.
  use ExUnit.Case, async: false
  import Bitwise

  describe "deep native code runs on engine threads" do
    # With the smallest stacks the VM allows, a BLAS or LAPACK call on a scheduler's own
    # stack crashes the fresh VM at once (before the fix: every run, rc 139).
    test "a large matmul then an inverse, in fresh VMs with minimal scheduler stacks" do
      for _run <- 1..2 do
        assert {:ok, sums} = Mx.FreshVM.run(Mx.BlasWorkloads, :matmul_then_inv, [3])
        # ones(2048)^2 sums to 2048^3; (I + J)^-1 = I - J/129 sums to 128 - 128^2/129
        expected = 2048.0 ** 3 + (128 - 128 * 128 / 129)
        for s <- sums, do: assert_in_delta(s, expected, 1.0e-6 * expected)
      end
    end

    test "every linalg function after a large threaded matmul, and BLAS and LAPACK from two processes" do
      assert {:ok, sums} = Mx.FreshVM.run(Mx.BlasWorkloads, :linalg_after_matmul, [])
      assert Enum.all?(sums, &is_float/1)
      # the same values as in this VM
      assert_sums_close(sums, Mx.BlasWorkloads.linalg_after_matmul())
      assert {:ok, {blas, lapack}} = Mx.FreshVM.run(Mx.BlasWorkloads, :concurrent, [2])
      assert length(blas) == 2 and length(lapack) == 2
      for s <- lapack, do: assert_sums_close(s, sums)
    end

    defp assert_sums_close(a, b), do: Enum.zip_with(a, b, fn x, y -> assert_in_delta(x, y, 1.0e-9 * max(1.0, abs(y))) end)
  end

  describe "normal schedulers" do
    # Per-thread CPU time of every normal-scheduler NIF call and destructor, over workloads
    # swept across sizes so the largest one kept inline is among them. Limit: 1 ms.
    for {name, _} <- Mx.SchedWorkloads.all() do
      @name name
      # timings: `make asan` excludes them (the sanitizers slow every call several-fold)
      @tag :timing
      test "no call over 1 ms: #{name}" do
        # in a fresh VM: what earlier tests left (caches, fragmented heaps) is not this workload's cost
        assert {:ok, {ns, nif, _over}} = Mx.FreshVM.run(Mx.SchedWorkloads, :best_named, [@name])
        assert ns < 1_000_000, "#{nif} held a normal scheduler for #{ns / 1.0e6} ms"
      end
    end

    test "the probe fails above the limit: a 20 ms inline eval is seen" do
      old = Mx.NIF.set_dirty_threshold(1 <<< 60)

      try do
        x = Mx.eval(Mx.Random.uniform(Mx.Random.key(1), shape: {1 <<< 20}, type: :f64))
        Mx.NIF.probe(:start)
        Mx.eval(Mx.Special.betainc(2.5, 1.5, x))
        {ns, nif, over} = Mx.NIF.probe(:stop)
        assert ns > 1_000_000 and nif == :eval and over >= 1
      after
        Mx.NIF.set_dirty_threshold(old)
      end
    end
  end

  describe "abandoned work" do
    test "killing processes mid-eval cancels their work and frees its memory" do
      # Uncancelled, the evals ran on for ~10 s holding their outputs; cancelled, they stop
      # at the next block of gemm rows.
      {held, ms, finished} = Mx.SchedWorkloads.killed_evals(3_000)
      # the evals running (as many as dirty schedulers) had allocated their 72 MB products
      assert held >= 72_000_000
      assert is_integer(ms), "memory still held 3 s after the kill"
      refute finished
    end

    test "a cancelled eval leaves no node half-computed: evaluating again gives the value" do
      a = Mx.ones({1500, 1500}, type: :f64)
      c = Mx.sum(Mx.matmul(a, a))
      task = Task.async(fn -> Mx.eval(c) end)
      Process.sleep(5)
      Task.shutdown(task, :brutal_kill)
      assert Mx.to_number(c) == 1500.0 ** 3
    end
  end

  describe "array terms" do
    test "hashing and serializing an array costs O(1), not O(bytes)" do
      a = Mx.ones({10_000_000}, type: :f64)
      assert byte_size(:erlang.term_to_binary(a)) < 1024
      assert is_integer(:erlang.phash2(a))
      assert :erlang.phash2(a) != :erlang.phash2(Mx.ones({10_000_000}, type: :f64))
      assert Map.fetch!(%{a => :found}, a) == :found
      t = :ets.new(:arrays, [:set, :private])
      :ets.insert(t, {a, 1})
      assert [{^a, 1}] = :ets.lookup(t, a)
      assert MapSet.member?(MapSet.new([a]), a)
    end

    test "an array's bytes still count against its owner's binary heap (the GC sees them)" do
      words = fn ->
        {_, info} = :erlang.process_info(self(), :garbage_collection_info)
        info[:bin_vheap_size] + info[:bin_old_vheap_size]
      end

      before = words.()
      a = Mx.ones({10_000_000}, type: :f64)
      :erlang.garbage_collect()
      assert words.() - before >= div(80_000_000, 8)
      assert Mx.shape(a) == {10_000_000}
    end

    test "a handle that went through term_to_binary on this node still works" do
      a = Mx.tensor([1.0, 2.0])
      b = :erlang.binary_to_term(:erlang.term_to_binary(a))
      assert b == a
      assert Mx.to_list(Mx.add(b, 1.0)) == [2.0, 3.0]
    end
  end

  describe "smaller defects found by probing" do
    test "a list nested past the rank limit is refused at once, however deep" do
      deep = Enum.reduce(1..100_000, [1.0], fn _, acc -> [acc] end)
      assert_raise ArgumentError, ~r/nested deeper than Mx's rank limit of 8/, fn -> Mx.tensor(deep) end
      nine = Enum.reduce(1..8, [1.0], fn _, acc -> [acc] end)
      assert_raise ArgumentError, ~r/rank limit/, fn -> Mx.tensor(nine) end
      eight = Enum.reduce(1..7, [1.0], fn _, acc -> [acc] end)
      assert Mx.shape(Mx.tensor(eight)) == {1, 1, 1, 1, 1, 1, 1, 1}
    end

    test "from_binary names what is wrong with its data" do
      assert_raise ArgumentError, "Mx.from_binary/3: data must be whole bytes, got a bitstring of 3 bits", fn ->
        Mx.from_binary(<<1::3>>, :u8)
      end

      assert_raise ArgumentError, "Mx.from_binary/3: 3 bytes is not a whole number of f32 elements (4 bytes each)", fn ->
        Mx.from_binary(<<1, 2, 3>>, :f32)
      end

      assert_raise ArgumentError, ~r/data must be a binary/, fn -> Mx.from_binary([1, 2], :u8) end
    end

    test "Gen.Dist.batch/2 raises ArgumentError on arguments that are not a list of arrays" do
      assert_raise ArgumentError, ~r/Gen.Dist.batch\/2 \(normal\): expects a non-empty list/, fn -> Gen.Dist.batch("normal", 1.0) end
      assert_raise ArgumentError, ~r/parameters must be Mx arrays/, fn -> Gen.Dist.batch("normal", [1.0]) end
      assert Gen.Dist.batch("normal", [Mx.tensor([1.0, 2.0]), Mx.tensor(1.0, type: :f64)]) == {:f64, {2}}
    end

    test "the buffer cache is bounded by default: 1/16 of the machine's memory" do
      [total_kb] = Regex.run(~r/MemTotal:\s+(\d+) kB/, File.read!("/proc/meminfo"), capture: :all_but_first)
      # read by test_helper.exs before any test changed it
      limit = :persistent_term.get(:mx_default_cache_limit)
      assert is_integer(limit)
      assert_in_delta limit, String.to_integer(total_kb) * 1024 / 16, 64 * 1024 * 1024
    end
  end
end
