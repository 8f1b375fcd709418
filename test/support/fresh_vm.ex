defmodule Mx.FreshVM do
  @moduledoc false
  # Runs a function of a compiled module in a fresh BEAM (a :peer over stdio, no distribution)
  # with the smallest scheduler stacks the VM allows, so native code that overflows a
  # scheduler's stack crashes that VM, not the test suite.

  @small_stacks ~w(+sssdcpu 20 +sssdio 20 +sss 20)

  @doc "{:ok, result} or {:crashed, reason} for apply(m, f, a) in a fresh VM."
  def run(m, f, a, timeout \\ 300_000) do
    paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
    args = Enum.map(@small_stacks, &String.to_charlist/1) ++ paths
    {:ok, peer, _node} = :peer.start_link(%{connection: :standard_io, args: args})
    Process.unlink(peer)

    try do
      {:ok, :peer.call(peer, m, f, a, timeout)}
    catch
      kind, reason -> {:crashed, {kind, reason}}
    after
      if Process.alive?(peer), do: catch_exit(:peer.stop(peer))
    end
  end

  defp catch_exit(fun) do
    fun
  catch
    :exit, _ -> :ok
  end
end

defmodule Mx.BlasWorkloads do
  @moduledoc false
  # The crash of issue 9 (a threaded OpenBLAS gemm overflowed a dirty scheduler's stack) and
  # its variants; each returns a checksum so the caller sees the work was done.

  @doc "The issue's script: a large f64 matmul, then a small inverse, `iters` times."
  def matmul_then_inv(iters) do
    for _ <- 1..iters do
      a = Mx.eval(Mx.ones({2048, 2048}, type: :f64))
      c = Mx.eval(Mx.matmul(a, a))
      b = Mx.eval(Mx.add(Mx.eye(128, type: :f64), 1.0))
      Mx.to_number(Mx.sum(c)) + Mx.to_number(Mx.sum(Mx.Linalg.inv(b)))
    end
  end

  @doc "Every linalg function after a large threaded matmul."
  def linalg_after_matmul do
    a = Mx.eval(Mx.ones({1536, 1536}, type: :f64))
    Mx.eval(Mx.matmul(a, a))
    s = Mx.add(Mx.multiply(Mx.eye(96, type: :f64), 96.0), Mx.ones({96, 96}, type: :f64))
    v = Mx.ones({96}, type: :f64)

    outs = [
      Mx.Linalg.cholesky(s),
      Mx.Linalg.solve(s, v),
      Mx.Linalg.triangular_solve(Mx.Linalg.cholesky(s), v),
      Mx.Linalg.inv(s),
      Mx.Linalg.det(s),
      Mx.Linalg.slogdet(s) |> elem(1),
      Mx.Linalg.qr(s) |> elem(1),
      Mx.Linalg.svd(s) |> elem(1),
      Mx.Linalg.eigh(s) |> elem(0),
      Mx.Linalg.norm(s, ord: :nuc),
      Mx.FFT.fft(v) |> Mx.real()
    ]

    Enum.map(outs, &(&1 |> Mx.sum() |> Mx.to_number()))
  end

  @doc "BLAS and LAPACK from two processes at once."
  def concurrent(iters) do
    blas = Task.async(fn -> matmul_then_inv(iters) end)
    lapack = Task.async(fn -> for _ <- 1..iters, do: linalg_after_matmul() end)
    {Task.await(blas, :infinity), Task.await(lapack, :infinity)}
  end
end
