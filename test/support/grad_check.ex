defmodule Mx.GradCheck do
  @moduledoc """
  Finite-difference gradient checks in f64 (the analogue of Nx's `check_grads!`).

  For `f` from f64 arrays to an f64 array, the scalar `L(x) = sum(w * f(x))`
  with fixed random weights `w` exercises the whole Jacobian. Its gradient
  from `Mx.grad/2` is compared with central differences
  `(L(x + h e_i) - L(x - h e_i)) / 2h`, whose error is O(h^2 |L'''|) from
  truncation plus O(eps |L| / h) from rounding: with h = 1e-6 and values of
  order 1 both stay below ~1e-9, so a tolerance of 1e-6 (absolute and
  relative) leaves a wide margin and still catches any wrong rule.
  """
  import ExUnit.Assertions

  @h 1.0e-6
  @tol 1.0e-6

  @doc "Checks the gradient of `f` at `inputs` (a list of f64 arrays) for every input."
  def check_grads!(f, inputs, opts \\ []) do
    tol = opts[:tol] || @tol
    out = apply(f, inputs)
    weights = random_f64(Mx.shape(out), 7)
    loss = fn args -> Mx.sum(Mx.multiply(apply(f, args), weights)) end
    argnums = Enum.to_list(0..(length(inputs) - 1))
    grads = apply(Mx.grad(with_arity(length(inputs), loss), argnums), inputs)

    for {{x, g}, i} <- Enum.with_index(Enum.zip(inputs, grads)), Mx.Type.float?(Mx.type(x)) do
      numeric = numeric_grad(loss, inputs, i)
      analytic = Mx.to_flat_list(g)
      assert length(numeric) == length(analytic)

      for {{n, a}, k} <- Enum.with_index(Enum.zip(numeric, analytic)) do
        assert is_float(a) and abs(n - a) <= tol * (1 + abs(n)),
               "gradient of input #{i} element #{k}: analytic #{inspect(a)} vs numeric #{n}"
      end
    end

    :ok
  end

  @doc "<v, J t> (forward mode) equals <J^T v, t> (reverse mode) for random v, t."
  def check_vjp_jvp!(f, inputs) do
    out = apply(f, inputs)
    v = random_f64(Mx.shape(out), 11)
    ts = Enum.with_index(inputs, fn x, i -> random_f64(Mx.shape(x), 20 + i) end)
    {_, jt} = Mx.jvp(f, inputs, ts)
    {_, vjs} = Mx.vjp(f, inputs, v)
    lhs = Mx.sum(Mx.multiply(v, jt)) |> Mx.to_number()
    rhs = Enum.zip(vjs, ts) |> Enum.map(fn {g, t} -> Mx.sum(Mx.multiply(g, t)) |> Mx.to_number() end) |> Enum.sum()
    assert abs(lhs - rhs) <= 1.0e-9 * (1 + abs(lhs)), "<v, J t> = #{lhs} but <J^T v, t> = #{rhs}"
    :ok
  end

  defp with_arity(1, g), do: fn a -> g.([a]) end
  defp with_arity(2, g), do: fn a, b -> g.([a, b]) end
  defp with_arity(3, g), do: fn a, b, c -> g.([a, b, c]) end

  defp numeric_grad(loss, inputs, i) do
    x = Enum.at(inputs, i)
    flat = Mx.to_flat_list(x)

    for k <- 0..(length(flat) - 1)//1 do
      at = fn delta ->
        xs = List.update_at(flat, k, &(&1 + delta)) |> Mx.tensor(type: :f64) |> Mx.reshape(Mx.shape(x))
        loss.(List.replace_at(inputs, i, xs)) |> Mx.to_number()
      end

      (at.(@h) - at.(-@h)) / (2 * @h)
    end
  end

  @doc "Deterministic f64 values in [lo, hi) of a shape."
  def random_f64(shape, seed, lo \\ -1.0, hi \\ 1.0) do
    :rand.seed(:exsss, {seed, 17, 29})
    n = shape |> Tuple.to_list() |> Enum.reduce(1, &*/2)
    for(_ <- 1..n//1, do: lo + (hi - lo) * :rand.uniform()) |> Mx.tensor(type: :f64) |> Mx.reshape(shape)
  end
end
