defmodule Mx.ConcurrencyTest do
  # Many processes building and evaluating graphs at once, sharing graphs, and
  # disposing arrays others are using. Every expected value is computed in
  # Elixir and exact: integer data, or f64 data whose every intermediate is an
  # integer below 2^53, so any race that corrupts data shows as a mismatch.
  use ExUnit.Case, async: false

  @moduletag timeout: 300_000
  @procs 64

  defp in_parallel(enum, fun) do
    enum
    |> Task.async_stream(fun, max_concurrency: @procs, timeout: 240_000, ordered: true)
    |> Enum.map(fn {:ok, result} -> result end)
  end

  defp f64_binary(values), do: for(v <- values, into: <<>>, do: <<v * 1.0::float-64-native>>)

  # One process's work: small graphs run inline, large ones (> 65536 elements) on dirty schedulers.
  defp job(i) do
    # a small integer chain: 3x + i - x
    n = 100 + i
    x = Mx.iota({n})
    assert Mx.to_list(x |> Mx.multiply(3) |> Mx.add(i) |> Mx.subtract(x)) == Enum.map(0..(n - 1), &(2 * &1 + i))

    # a large f64 chain
    m = 70_000 + 1000 * i
    y = Mx.iota({m}, type: :f64) |> Mx.multiply(2.0) |> Mx.add(i * 1.0) |> Mx.negate() |> Mx.add(1.0)
    assert Mx.to_binary(y) == f64_binary(Enum.map(0..(m - 1), &(1 - (2 * &1 + i))))

    # reductions, whole and by axis: iota({r, c}) has row sums j*c*c + c(c-1)/2
    assert Mx.to_number(Mx.sum(Mx.iota({m}))) == div(m * (m - 1), 2)
    {r, c} = {250 + i, 300}
    grid = Mx.iota({r, c})
    assert Mx.to_list(Mx.sum(grid, axes: [1])) == Enum.map(0..(r - 1), &(&1 * c * c + div(c * (c - 1), 2)))
    assert Mx.to_number(Mx.reduce_max(Mx.transpose(grid))) == r * c - 1
    assert Mx.to_list(Mx.argmax(grid, axis: 0)) == List.duplicate(r - 1, c)

    # matmul: A[a][j] = a + j against ones gives k*a + k(k-1)/2; integer A against eye gives A
    {p, k, q} = {40 + i, 64, 50}
    a = Mx.add(Mx.iota({p, k}, axis: 0, type: :f64), Mx.iota({p, k}, axis: 1, type: :f64))
    expect = for row <- 0..(p - 1), do: List.duplicate(k * row + div(k * (k - 1), 2), q)
    assert Mx.to_binary(Mx.matmul(a, Mx.ones({k, q}, type: :f64))) == f64_binary(List.flatten(expect))
    ai = Mx.iota({p, k})
    assert Mx.to_list(Mx.matmul(ai, Mx.eye(k, type: :s64))) == Mx.to_list(ai)
    :ok
  end

  test "#{@procs} processes build and evaluate graphs at once, all exact" do
    assert in_parallel(0..(@procs - 1), &job/1) == List.duplicate(:ok, @procs)
  end

  test "processes sharing one lazy graph all see the same correct result" do
    n = 200_000

    for round <- 1..8 do
      # Three roots over one shared pending intermediate; nobody has evaluated anything yet.
      shared = Mx.iota({n}, type: :f64) |> Mx.multiply(2.0) |> Mx.add(round * 1.0)
      total = Mx.sum(shared)
      top = Mx.reduce_max(shared)
      odd_count = shared |> Mx.remainder(2.0) |> Mx.not_equal(0.0) |> Mx.sum()
      refute Mx.evaluated?(total) or Mx.evaluated?(shared)

      # sum of 2k + round over k < n is n(n-1) + n*round
      expected = {n * (n - 1) + n * round, 2 * (n - 1) + round, if(rem(round, 2) == 1, do: n, else: 0)}

      results =
        in_parallel(1..@procs, fn j ->
          case rem(j, 4) do
            0 -> Mx.eval({total, top, odd_count})
            1 -> Mx.eval(shared)
            _ -> :ok
          end

          {Mx.to_number(total), Mx.to_number(top), Mx.to_number(odd_count)}
        end)

      assert Enum.uniq(results) == [expected]
      assert Mx.to_binary(shared) == f64_binary(Enum.map(0..(n - 1), &(2 * &1 + round)))
    end
  end

  test "disposing arrays while other processes evaluate graphs over them raises or succeeds, never corrupts" do
    n = 50_000

    outcomes =
      for _round <- 1..12 do
        # bases 0-1 are disposed before, 2-5 during, 6-7 never: base b holds b + 1 everywhere
        bases = for b <- 0..7, do: Mx.eval(Mx.full({n}, b + 1.0, type: :f64))
        Enum.each(Enum.take(bases, 2), &Mx.dispose/1)

        disposer =
          Task.async(fn ->
            for b <- Enum.shuffle(2..5) do
              Process.sleep(:rand.uniform(3) - 1)
              Mx.dispose(Enum.at(bases, b))
            end
          end)

        results =
          in_parallel(0..(@procs - 1), fn j ->
            b = rem(j, 8)
            base = Enum.at(bases, b)

            try do
              if rem(j, 2) == 0 do
                # a graph over the base: sum of (2(b+1) + j) over n elements
                v = base |> Mx.multiply(2.0) |> Mx.add(j * 1.0) |> Mx.sum() |> Mx.to_number()
                assert v == n * (2 * (b + 1) + j)
              else
                # the base's own data
                assert Mx.to_binary(base) == f64_binary(List.duplicate(b + 1, n))
              end

              {b, :ok}
            rescue
              e in Mx.Error ->
                assert e.message =~ "disposed"
                {b, :disposed}
            end
          end)

        Task.await(disposer)
        results
      end
      |> List.flatten()

    by_base = Enum.group_by(outcomes, &elem(&1, 0), &elem(&1, 1))
    for b <- 0..1, do: assert(Enum.uniq(by_base[b]) == [:disposed])
    for b <- 6..7, do: assert(Enum.uniq(by_base[b]) == [:ok])
    for b <- 2..5, do: assert(Enum.all?(by_base[b], &(&1 in [:ok, :disposed])))
  end
end
