defmodule Mx.ErrorsTest do
  # Each family's errors: the exact exception, and a message that names the op,
  # shows the operands' shapes and dtypes, and says what to do.
  # Not async: one test sets the engine-wide memory limit.
  use ExUnit.Case, async: false
  import Bitwise

  # Asserts the exception type, that the message starts with "[op] " when an op is
  # given, and that it contains every part; returns the message.
  defp assert_error(kind, op, fun, parts) do
    e = assert_raise(kind, fun)
    if op, do: assert(String.starts_with?(e.message, "[#{op}] "), "expected [#{op}] to open: #{e.message}")
    for part <- parts, do: assert(e.message =~ part, "expected #{inspect(part)} in: #{e.message}")
    e.message
  end

  setup do
    %{a: Mx.iota({2, 3}, type: :s32)}
  end

  describe "creation" do
    test "negative, huge and over-rank shapes" do
      assert_error(Mx.Error, "full", fn -> Mx.full({-1, 2}, 0) end, ["shape [-1][2]", "negative dimension", "must be >= 0"])
      assert_error(Mx.Error, "full", fn -> Mx.zeros({1 <<< 40, 1 <<< 40}) end, ["[1099511627776][1099511627776]", "more elements than memory can hold"])

      assert_error(ArgumentError, "full", fn -> Mx.zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}) end, ["tuple of at most 8 integers"])
    end

    test "iota axis, arange step, linspace and eye counts" do
      assert_error(Mx.Error, "iota", fn -> Mx.iota({2, 3}, axis: 2) end, ["axis 2", "rank 2", "use an axis in [0, 2) or nil"])
      assert_error(ArgumentError, "arange", fn -> Mx.arange(0, 10, 0) end, ["step must be nonzero"])
      assert_error(Mx.Error, "arange", fn -> Mx.NIF.arange(:f32, 0, :nan, 3) end, ["step must be finite and nonzero"])
      assert_error(ArgumentError, "linspace", fn -> Mx.linspace(0, 1, n: -1) end, ["count must be a non-negative integer"])
      assert_error(ArgumentError, "eye", fn -> Mx.eye(-1) end, ["sizes must be non-negative integers"])
    end

    test "from_binary size mismatch shows the dtype, the shape and both byte counts" do
      assert_error(Mx.Error, "from_binary", fn -> Mx.from_binary(<<1, 2, 3>>, :f32, shape: {1}) end, ["3 bytes given", "f32 [1] needs 4"])
    end

    test "malformed Elixir data and unknown types are ArgumentErrors saying what is accepted" do
      assert_error(ArgumentError, nil, fn -> Mx.tensor([[1, 2], [3]]) end, ["rectangular nested list", "[{2}, {1}]"])
      assert_error(ArgumentError, nil, fn -> Mx.tensor([1, :x]) end, ["expects numbers, got :x"])
      assert_error(ArgumentError, nil, fn -> Mx.zeros({2}, type: :f8) end, ["unknown type :f8", "use one of", "{:f, 32}"])
      assert_error(ArgumentError, nil, fn -> Mx.tensor("12") end, ["expects a number, a nested list of numbers or an Mx array"])
    end

    # eye is composed of iota nodes; the error must still name the op the caller used.
    test "eye names itself when too large" do
      assert_error(Mx.Error, "eye", fn -> Mx.eye(1 <<< 30) end, ["more elements than memory can hold"])
    end
  end

  describe "elementwise" do
    test "binary ops report both shapes and dtypes and how to align them", %{a: a} do
      assert_error(Mx.Error, "add", fn -> Mx.add(a, Mx.zeros({4}, type: :f64)) end, [
        "shapes s32[2][3] and f64[4] cannot be broadcast together",
        "axis 1 has sizes 3 and 4",
        "sizes must match or be 1",
        "reshape or new_axis"
      ])

      assert_error(Mx.Error, "less", fn -> Mx.less(Mx.zeros({2, 1, 5}), Mx.zeros({3, 4})) end, ["f32[2][1][5] and f32[3][4]", "sizes 5 and 4"])
      assert_error(Mx.Error, "select", fn -> Mx.select(Mx.tensor([1, 0]), a, 0) end, ["s64[2] and s32[2][3]", "sizes must match or be 1"])
    end

    test "unary ops name themselves on a disposed input" do
      d = Mx.tensor([1.0])
      Mx.dispose(d)
      assert_error(Mx.Error, "exp", fn -> Mx.exp(d) end, ["input 0 was disposed"])
      assert_error(Mx.Error, "negate", fn -> Mx.negate(d) end, ["input 0 was disposed"])
    end

    # An integer input is cast to f32 first; the error must name exp, not the internal cast.
    test "float unary ops name themselves on a disposed integer input" do
      d = Mx.tensor([1])
      Mx.dispose(d)
      assert_error(Mx.Error, "exp", fn -> Mx.exp(d) end, ["input 0 was disposed"])
    end

    test "the wrong family of op is refused" do
      a = Mx.tensor([1.0]).ref
      assert_error(Mx.Error, "add", fn -> Mx.NIF.unary(:add, a) end, ["is not a unary op"])
      assert_error(Mx.Error, "negate", fn -> Mx.NIF.binary(:negate, a, a) end, ["is not a binary op"])
      assert_error(ArgumentError, "unary", fn -> Mx.NIF.unary(:bogus, a) end, ["unknown op"])
    end
  end

  describe "reductions, scans and sorts" do
    test "axes out of range show the array and the valid range", %{a: a} do
      assert_error(Mx.Error, "sum", fn -> Mx.sum(a, axes: [2]) end, ["axis 2 is out of range for s32[2][3]", "axes must be in [-2, 2)"])
      assert_error(Mx.Error, "argmax", fn -> Mx.argmax(a, axis: -3) end, ["axis -3", "s32[2][3]", "[-2, 2)"])
      assert_error(Mx.Error, "cumulative_sum", fn -> Mx.cumulative_sum(a, axis: 3) end, ["axis 3", "s32[2][3]", "[-2, 2)"])
      assert_error(Mx.Error, "sort", fn -> Mx.sort(a, axis: 2) end, ["axis 2", "s32[2][3]", "[-2, 2)"])
    end

    test "an axis listed twice, and max/min over nothing", %{a: a} do
      assert_error(Mx.Error, "sum", fn -> Mx.sum(a, axes: [0, -2]) end, ["axis 0 is listed twice", "list each axis once"])
      assert_error(Mx.Error, "reduce_max", fn -> Mx.reduce_max(Mx.zeros({0, 2})) end, ["f32[0][2]", "empty axes", "use a non-empty array"])
      assert_error(Mx.Error, "argmin", fn -> Mx.argmin(Mx.zeros({2, 0}), axis: 1) end, ["f32[2][0]", "empty axes"])
    end

    test "a bad sort direction is an ArgumentError naming the op", %{a: a} do
      assert_error(ArgumentError, "sort", fn -> Mx.sort(a, direction: :up) end, ["direction must be :asc or :desc, got :up"])
    end
  end

  describe "shape ops" do
    test "reshape sizes", %{a: a} do
      assert_error(Mx.Error, "reshape", fn -> Mx.reshape(a, {4}) end, ["cannot reshape s32[2][3] (6 elements) to [4] (4 elements)", "sizes must match"])
      assert_error(Mx.Error, "reshape", fn -> Mx.reshape(a, {4, :auto}) end, ["cannot infer dimension 1", "s32[2][3] has 6 elements", "not a multiple of 4"])
      assert_error(Mx.Error, "reshape", fn -> Mx.reshape(a, {-2, 3}) end, ["dimension 0 is -2", "must be >= 0 (or one -1)"])
    end

    test "transpose permutations", %{a: a} do
      assert_error(Mx.Error, "transpose", fn -> Mx.transpose(a, axes: [0, 0]) end, ["axis 0 appears twice", "a permutation of 0..1"])
      assert_error(Mx.Error, "transpose", fn -> Mx.transpose(a, axes: [0]) end, ["1 axes given for a rank-2 array", "give a permutation of all axes"])
      assert_error(Mx.Error, "transpose", fn -> Mx.transpose(a, axes: [0, 2]) end, ["axis 2 is out of range for s32[2][3]"])
    end

    test "a repeated transpose axis shows the array", %{a: a} do
      assert_error(Mx.Error, "transpose", fn -> Mx.transpose(a, axes: [0, 0]) end, ["s32[2][3]"])
    end

    test "broadcast, squeeze and new_axis", %{a: a} do
      assert_error(Mx.Error, "broadcast", fn -> Mx.broadcast(a, {3, 3}) end, ["cannot broadcast s32[2][3] to [3][3]", "trailing dimensions must match or be 1"])
      assert_error(Mx.Error, "squeeze", fn -> Mx.squeeze(a, axes: [0]) end, ["axis 0 of s32[2][3] has size 2", "only axes of size 1 can be squeezed"])
      assert_error(Mx.Error, "new_axis", fn -> Mx.new_axis(a, 4) end, ["axis 4 is out of range for s32[2][3]"])
      assert_error(Mx.Error, "new_axis", fn -> Mx.new_axis(Mx.zeros({1, 1, 1, 1, 1, 1, 1, 1}), 0) end, ["ranks go up to 8"])
    end

    test "slice bounds and strides", %{a: a} do
      assert_error(Mx.Error, "slice", fn -> Mx.slice(a, [0, 2], [2, 2]) end, ["range 2..4 on axis 1 is outside s32[2][3]", "need 0 <= start <= stop <= 3"])
      assert_error(Mx.Error, "slice", fn -> Mx.slice(a, [0, 0], [2, 2], strides: [1, 0]) end, ["stride 0 on axis 1 must be >= 1", "use reverse"])
      assert_error(ArgumentError, "slice", fn -> Mx.slice(a, [0], [2]) end, ["need one entry per axis of s32[2][3]"])
    end

    test "concatenate and stack shapes", %{a: a} do
      assert_error(Mx.Error, "concatenate", fn -> Mx.concatenate([a, Mx.zeros({2, 4})]) end, [
        "array 1 is f32[2][4] but array 0 is s32[2][3]",
        "all shapes must match except axis 0"
      ])

      assert_error(Mx.Error, "concatenate", fn -> Mx.concatenate([a, Mx.zeros({2})], axis: 1) end, ["array 1 is f32[2]", "except axis 1"])
      assert_error(Mx.Error, "concatenate", fn -> Mx.concatenate([Mx.tensor(1), Mx.tensor(2)]) end, ["rank-0", "use stack"])
      assert_error(ArgumentError, "concatenate", fn -> Mx.concatenate([]) end, ["non-empty list"])
      assert_error(Mx.Error, "stack", fn -> Mx.stack([a, Mx.zeros({3, 2})]) end, ["array 1 is f32[3][2] but array 0 is s32[2][3]", "must have the same shape"])
    end

    test "pad", %{a: a} do
      assert_error(Mx.Error, "pad", fn -> Mx.pad(a, 0, [{-2, -2, 0}, {0, 0, 0}]) end, ["padding (-2, -2) on axis 0 of s32[2][3]", "leaves a negative size"])
      assert_error(Mx.Error, "pad", fn -> Mx.pad(a, 0, [{0, 0, -1}, {0, 0, 0}]) end, ["interior padding on axis 0 is -1", "it must be >= 0"])
      assert_error(Mx.Error, "pad", fn -> Mx.pad(a, Mx.tensor([1, 2], type: :s32), [{0, 0, 0}, {0, 0, 0}]) end, ["pad value must be a scalar, got s32[2]"])
      assert_error(ArgumentError, "pad", fn -> Mx.pad(a, 0, [{0, 0, 0}]) end, ["one {lo, hi, interior} per axis (2)"])
    end

    # 16777216 * 2^40 = 2^64 wraps to 0 in int64: the size must be checked, not wrapped to {16777217}.
    test "pad whose result would exceed int64 raises instead of wrapping" do
      a = Mx.zeros({(1 <<< 24) + 1}, type: :u8)
      assert_error(Mx.Error, "pad", fn -> Mx.pad(a, 0, [{0, 0, 1 <<< 40}]) end, ["u8[16777217]"])
    end
  end

  describe "size overflow" do
    # Empty arrays may have huge dimensions; four 2^62 axes joined would wrap int64 to {0, 0}.
    test "concatenate whose joined axis exceeds int64 raises instead of wrapping" do
      z = Mx.zeros({0, 1 <<< 62})
      assert_error(Mx.Error, "concatenate", fn -> Mx.concatenate([z, z, z, z], axis: 1) end, ["f32[0][4611686018427387904]"])
    end
  end

  describe "indexing" do
    test "take with out-of-bounds indices builds, then raises at eval", %{a: a} do
      t = Mx.take(a, Mx.tensor([0, 3]), axis: 1)
      assert t.shape == {2, 2}
      assert_error(Mx.Error, "take", fn -> Mx.eval(t) end, ["index 3 is out of bounds for axis 1 of size 3", "indices must be in [0, size)"])
      assert_error(Mx.Error, "take", fn -> Mx.to_list(Mx.take(a, Mx.tensor([-1]))) end, ["index -1 is out of bounds for axis 0 of size 2"])
      assert_error(Mx.Error, "take", fn -> Mx.take(a, Mx.tensor([0.0])) end, ["indices must have an integer dtype, got f32[1]", "use as_type"])
    end

    test "gather and take_along_axis", %{a: a} do
      assert_error(Mx.Error, "gather", fn -> Mx.gather(a, Mx.tensor([[0, 0, 0]])) end, ["indices s64[1][3]", "last axis of size <= rank of s32[2][3]"])
      assert_error(Mx.Error, "gather", fn -> Mx.eval(Mx.gather(a, Mx.tensor([[0, 5]]))) end, ["index 5 is out of bounds for axis 1 of size 3"])

      assert_error(Mx.Error, "take_along_axis", fn -> Mx.take_along_axis(a, Mx.tensor([[0], [1], [2]]), axis: 1) end, [
        "indices s64[3][1] do not fit s32[2][3]",
        "same rank and sizes except axis 1 required"
      ])
    end

    test "indexed_add and indexed_put shapes and bounds", %{a: a} do
      assert_error(Mx.Error, "indexed_add", fn -> Mx.indexed_add(a, Mx.tensor([[0], [1]]), Mx.tensor([1, 2])) end, [
        "updates s64[2] must have shape [n] ++ a.shape[k:]",
        "s32[2][3] and indices s64[2][1]"
      ])

      assert_error(Mx.Error, "indexed_put", fn -> Mx.indexed_put(a, Mx.tensor([0, 1]), Mx.tensor([[1, 2, 3]])) end, [
        "indices must be [n, k] with k <= rank of s32[2][3], got s64[2]"
      ])

      put = Mx.indexed_put(a, Mx.tensor([[0, 9]]), Mx.tensor([1]))
      assert_error(Mx.Error, "indexed_put", fn -> Mx.eval(put) end, ["index 9 is out of bounds for axis 1 of size 3"])
    end
  end

  describe "matmul" do
    test "contraction, batch and rank mismatches show both operands", %{a: a} do
      assert_error(Mx.Error, "matmul", fn -> Mx.matmul(a, Mx.zeros({2, 3})) end, [
        "contraction sizes differ: s32[2][3] has 3 columns but f32[2][3] has 2 rows",
        "the last axis of a must match the second-to-last of b"
      ])

      assert_error(Mx.Error, "matmul", fn -> Mx.matmul(Mx.zeros({2, 2, 3}), Mx.zeros({3, 3, 2})) end, ["batch axes of f32[2][2][3] and f32[3][3][2] cannot be broadcast"])
      assert_error(Mx.Error, "matmul", fn -> Mx.matmul(Mx.tensor(1.0), a) end, ["rank >= 1, got f32[] and s32[2][3]", "use multiply for scalars"])
    end
  end

  describe "memory limit" do
    setup do
      limit = Mx.Memory.report().memory_limit
      on_exit(fn -> Mx.Memory.set_memory_limit(limit) end)
    end

    test "an eval past the limit raises Mx.Error with the numbers and the fix, and can be retried" do
      big = Mx.zeros({1 <<< 20})
      Mx.Memory.set_memory_limit(1 <<< 20)

      assert_error(Mx.Error, nil, fn -> Mx.eval(big) end, [
        "memory limit reached",
        "4194304 more requested, limit 1048576",
        "dispose arrays you no longer need or raise Mx.Memory.set_memory_limit/1"
      ])

      refute Mx.evaluated?(big)
      Mx.Memory.set_memory_limit(:infinity)
      assert Mx.to_number(Mx.sum(big)) == 0.0
    end

    test "bad limits are ArgumentErrors" do
      assert_error(ArgumentError, "set_memory_limit", fn -> Mx.Memory.set_memory_limit(-1) end, ["non-negative integer or :infinity"])
      assert_error(ArgumentError, "set_cache_limit", fn -> Mx.Memory.set_cache_limit(:lots) end, ["non-negative integer or :infinity"])
    end

    test "the memory limit error names the op that allocated" do
      big = Mx.zeros({1 <<< 20})
      Mx.Memory.set_memory_limit(1 <<< 20)
      assert_error(Mx.Error, "full", fn -> Mx.eval(big) end, ["memory limit reached"])
    end

    # The data itself is allocated when the array is made, not at eval.
    test "the memory limit error names from_binary when the data itself does not fit" do
      Mx.Memory.set_memory_limit(1 <<< 20)
      data = :binary.copy(<<0>>, 4 <<< 20)
      assert_error(Mx.Error, "from_binary", fn -> Mx.from_binary(data, :u8) end, ["memory limit reached"])
    end
  end

  describe "disposed arrays" do
    test "building on, evaluating and reading a disposed array" do
      d = Mx.tensor([1.0, 2.0])
      pending = Mx.add(d, 1.0)
      Mx.dispose(d)

      assert_error(Mx.Error, "add", fn -> Mx.add(d, 1.0) end, ["input 0 was disposed", "cannot be used again"])
      assert_error(Mx.Error, "add", fn -> Mx.eval(pending) end, ["input 0 was disposed", "build the graph again from live arrays"])
      assert_error(Mx.Error, "eval", fn -> Mx.to_list(d) end, ["the array was disposed", "cannot be evaluated or read"])
      assert inspect(d) == "#Mx.Array<f32[2] disposed>"
    end
  end

  describe "Access" do
    test "out-of-range integers and ranges show the axis size and the array", %{a: a} do
      assert_error(ArgumentError, nil, fn -> a[2] end, ["index 2 is out of bounds for an axis of size 2 in s32[2][3]"])
      assert_error(ArgumentError, nil, fn -> a[-3] end, ["index -3 is out of bounds for an axis of size 2"])
      assert_error(ArgumentError, nil, fn -> a[0..2] end, ["range 0..2 is out of bounds for an axis of size 2 in s32[2][3]"])
      assert_error(ArgumentError, nil, fn -> a[[0, 1, 2]] end, ["too many indices (3) for an array of rank 2 (s32[2][3])"])
    end

    test "unsupported indices say what is supported", %{a: a} do
      assert_error(ArgumentError, nil, fn -> a[:x] end, ["cannot index s32[2][3] with :x", "use integers, ranges, .. or integer arrays"])
      assert_error(ArgumentError, nil, fn -> a[1..0//-1] end, ["range steps must be positive, got -1", "use Mx.reverse/2"])
      assert_error(ArgumentError, nil, fn -> put_in(a[0], 1) end, ["immutable", "Mx.indexed_put/3"])
    end

    test "integer-array indices out of range raise Mx.Error at eval", %{a: a} do
      x = a[[.., Mx.tensor([0, 3])]]
      assert_error(Mx.Error, "take", fn -> Mx.to_list(x) end, ["index 3 is out of bounds for axis 1 of size 3"])
    end
  end
end
