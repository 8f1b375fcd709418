defmodule Mx.LazinessTest do
  # Ops only build graph nodes; data is made by eval. Deep graphs are released
  # and evaluated iteratively, so a million-node chain cannot overflow a C stack.
  # Not async: it compares the engine-wide allocation counters.
  use ExUnit.Case, async: false

  @moduletag timeout: 300_000

  # A chain x + 1 + 1 + ... of n add nodes over an s64 scalar; only its head is returned,
  # so every intermediate node is reachable only through the chain.
  defp chain(n) do
    one = Mx.tensor(1)
    Enum.reduce(1..n, Mx.tensor(0), fn _, acc -> Mx.add(acc, one) end)
  end

  # Resource destructors run shortly after the GC that dropped the last reference.
  defp settled(live, tries \\ 400) do
    now = Mx.Memory.live_arrays()

    if now == live or tries == 0 do
      now
    else
      Process.sleep(25)
      settled(live, tries - 1)
    end
  end

  test "a chain of 10^5 adds computes nothing until eval" do
    before = Mx.Memory.report()
    c = chain(100_000)
    built = Mx.Memory.report()

    refute Mx.evaluated?(c)
    assert Mx.NIF.state(c.ref) == :pending
    assert inspect(c) == "#Mx.Array<s64 lazy>"
    # Nodes exist, but no buffer was allocated and no byte is held.
    assert built.live_arrays - before.live_arrays >= 100_000
    assert built.alloc_count == before.alloc_count
    assert built.live_buffers == before.live_buffers
    assert built.active_bytes == before.active_bytes

    assert Mx.to_number(c) == 100_000
    assert Mx.evaluated?(c)
    assert Mx.Memory.report().alloc_count > built.alloc_count
  end

  test "shape and type are known before evaluation" do
    a = Mx.iota({2, 3}, type: :f64) |> Mx.transpose() |> Mx.sum(axes: [0]) |> Mx.new_axis(0)
    before = Mx.Memory.report().alloc_count
    assert {a.shape, a.type} == {{1, 2}, :f64}
    assert Mx.describe(a) == "f64[1][2]"
    assert Mx.Memory.report().alloc_count == before
    refute Mx.evaluated?(a)
  end

  # Builds a chain and collects its intermediate terms, so the head alone holds the chain
  # and its release must free a million nodes at once; returns only plain terms.
  defp chain_held_by_head(n, base) do
    head = chain(n)
    :erlang.garbage_collect()
    {settled(base + n + 2), Mx.shape(head)}
  end

  test "dropping a 10^6-node chain releases it without overflowing the stack" do
    :erlang.garbage_collect()
    base = settled(Mx.Memory.live_arrays())
    # the adds, the zero and the shared one
    assert chain_held_by_head(1_000_000, base) == {base + 1_000_002, {}}
    :erlang.garbage_collect()
    assert settled(base) == base
  end

  test "evaluating a 10^6-node chain sorts it without overflowing the stack" do
    head = chain(1_000_000)
    :erlang.garbage_collect()
    assert Mx.to_number(head) == 1_000_000
    # Evaluation detached the chain: only the head and the shared operands remain.
    assert Mx.to_number(Mx.add(head, 1)) == 1_000_001
  end

  test "eval walks tuples, lists and maps and returns its input" do
    a = Mx.add(Mx.tensor(1), 1)
    b = Mx.multiply(Mx.tensor(2.0), 3.0)
    c = Mx.negate(Mx.tensor([1, 2]))
    d = Mx.exp(Mx.tensor(0.0))
    nested = {a, [b, %{key: c, other: :atom}], %{deep: [{d}]}, 42, "text"}

    refute Enum.any?([a, b, c, d], &Mx.evaluated?/1)
    assert Mx.eval(nested) === nested
    assert Enum.all?([a, b, c, d], &Mx.evaluated?/1)
    assert {Mx.to_number(a), Mx.to_number(b), Mx.to_list(c), Mx.to_number(d)} == {2, 6.0, [-1, -2], 1.0}

    # Terms without arrays pass through untouched.
    for x <- [42, :atom, "text", [], {}, %{}, [1, {2, %{3 => 4}}]], do: assert(Mx.eval(x) === x)
    assert Mx.eval(a) === a
  end

  test "one eval computes shared work once" do
    x = Mx.iota({1000}, type: :f64)
    shared = Mx.exp(Mx.divide(x, 1000.0))
    roots = [Mx.sum(shared), Mx.reduce_max(shared), Mx.add(shared, 1.0)]
    before = Mx.Memory.report().alloc_count
    Mx.eval(roots)
    # iota, divide's scalar, divide, exp, sum, reduce_max, add's scalar, add: one buffer each.
    assert Mx.Memory.report().alloc_count - before == 8
  end
end
