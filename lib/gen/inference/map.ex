defmodule Gen.Inference.MAP do
  @moduledoc """
  Maximum a posteriori optimisation of the selected continuous choices of a
  trace (Gen.jl's `map_optimize`), on the GFI alone: the objective is the
  log joint `Gen.assess/3` of the trace's choices with the selected values
  replaced, differentiated with `Mx.value_and_grad/2`; the optimum is
  written into the trace with `Gen.update/3`.

  Two methods:

    * the default, gradient ascent with a backtracking (Armijo) line search:
      from x, with gradient g, try x + s·g and halve s until the log joint
      rises by at least 10⁻⁴·s·|g|² (once the rise is lost in rounding, until
      the slope along the line, ∇f(x + s·g)·g, is no longer negative: the step
      stops short of the maximum on the line); the next trial step starts
      from 2s.
      It stops when max|g| ≤ `tol:` or no step of size ≥ 10⁻¹⁶ helps.
    * `optimizer:` a `Gen.Optim` (Adam, SGD), run for `steps:` steps.

  The selected choices move on their unconstrained scale (`Gen.Transform`:
  the transform of each distribution's support, or `transforms:`), so a
  step never leaves the support; the objective there is the log joint
  without the log-Jacobian, so the optimum is the mode of the constrained
  posterior, as Stan's optimizer finds it (with the Jacobian it would be
  the mode of the density of the unconstrained values, another point).

  Use it through `Gen.Inference.map_optimize/3`.
  """

  alias Gen.{Selection, Trace}
  alias Gen.Inference.Unconstrained

  @armijo 1.0e-4
  @min_step 1.0e-16

  @doc false
  @spec map_optimize(Trace.t(), Selection.t(), keyword()) :: Trace.t()
  def map_optimize(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(opts, [:steps, :tol, :step_size, :optimizer, :transforms], "Gen.Inference.map_optimize")

    plan =
      Unconstrained.plan!(trace, sel, Keyword.get(opts, :transforms, %{}), "Gen.Inference.map_optimize", "map_optimize")

    xs = Unconstrained.start(plan)
    f = fn us -> Unconstrained.log_density(plan, us, false) end
    steps = Keyword.get(opts, :steps, 1000)

    unless is_integer(steps) and steps >= 0 do
      raise ArgumentError, "Gen.Inference.map_optimize: steps: must be a non-negative integer, got #{inspect(steps)}"
    end

    new_xs =
      case Keyword.get(opts, :optimizer) do
        nil ->
          tol = Keyword.get(opts, :tol, 1.0e-6)

          unless is_number(tol) and tol >= 0 do
            raise ArgumentError, "Gen.Inference.map_optimize: tol: must be a non-negative number, got #{inspect(tol)}"
          end

          line_search(f, xs, steps, tol, Gen.Inference.Common.positive!(opts, :step_size, 1.0, "Gen.Inference.map_optimize"))

        _ ->
          opt = Gen.Optim.optimizer!(opts, nil, "Gen.Inference.map_optimize")
          {p, _hist} = Gen.Optim.fit(fn p, _i -> f.(p) end, xs, steps: steps, optimizer: opt)
          p
      end

    Unconstrained.write(plan, trace, new_xs)
  end

  defp line_search(f, xs, steps, tol, s0) do
    vg = Mx.value_and_grad(f)
    {lp, gs} = eval_vg(vg, xs)
    loop(vg, xs, lp, gs, s0, steps, tol)
  end

  defp loop(_vg, xs, _lp, _gs, _s, 0, _tol), do: xs

  defp loop(vg, xs, lp, gs, s, steps, tol) do
    m = max_abs(gs)

    unless is_float(m) do
      raise ArgumentError,
            "Gen.Inference.map_optimize: the gradient of the log joint is #{inspect(m)} at the start; start from a trace where the log joint and its gradient are finite"
    end

    if m <= tol do
      xs
    else
      g2 = gs |> Enum.map(&(&1 |> Mx.square() |> Mx.sum() |> Mx.to_number())) |> Enum.sum()

      case backtrack(vg, xs, lp, gs, g2, s) do
        nil -> xs
        {s_ok, xs2, lp2, gs2} -> loop(vg, xs2, lp2, gs2, 2 * s_ok, steps - 1, tol)
      end
    end
  end

  defp backtrack(_vg, _xs, _lp, _gs, _g2, s) when s < @min_step, do: nil

  defp backtrack(vg, xs, lp, gs, g2, s) do
    xs2 = Enum.zip_with(xs, gs, fn x, g -> Mx.add(x, Mx.multiply(g, s)) end)
    {lp2, gs2} = eval_vg(vg, xs2)

    # Armijo's sufficient increase; -Inf or NaN (outside the support) fails it. Where the change is
    # lost in rounding, the slope φ'(s) = ∇f(x')·g ≥ 0 instead: x' is short of the maximum on the line.
    ok? =
      is_float(lp2) and
        (lp2 >= lp + @armijo * s * g2 or
           (abs(lp2 - lp) <= 1.0e-9 * (1 + abs(lp)) and dot(gs2, gs) >= 0))

    if ok?, do: {s, xs2, lp2, gs2}, else: backtrack(vg, xs, lp, gs, g2, s / 2)
  end

  defp dot(as, bs),
    do: Enum.zip_with(as, bs, &(Mx.multiply(&1, &2) |> Mx.sum() |> Mx.to_number())) |> Enum.sum()

  defp eval_vg(vg, xs) do
    {lp, gs} = vg.(xs)
    Mx.eval([lp | gs])
    {Mx.to_number(lp), gs}
  end

  defp max_abs(gs), do: gs |> Enum.map(&(&1 |> Mx.abs() |> Mx.reduce_max() |> Mx.to_number())) |> Enum.max()
end
