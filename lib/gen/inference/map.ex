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
  The objective is a `Gen.Inference.Target` with `jacobian: false`,
  compiled for the line search.

  Use it through `Gen.Inference.map_optimize/3`.
  """

  alias Gen.{Selection, Trace}
  alias Gen.Inference.Target

  @armijo 1.0e-4
  @min_step 1.0e-16

  @doc false
  @spec map_optimize(Trace.t(), Selection.t(), keyword()) :: Trace.t()
  def map_optimize(%Trace{} = trace, %Selection{} = sel, opts) do
    Mx.Opts.validate!(opts, [:steps, :tol, :step_size, :optimizer, :transforms], "Gen.Inference.map_optimize")

    steps = Keyword.get(opts, :steps, 1000)

    unless is_integer(steps) and steps >= 0 do
      raise ArgumentError, "Gen.Inference.map_optimize: steps: must be a non-negative integer, got #{inspect(steps)}"
    end

    optimizer = Keyword.get(opts, :optimizer)

    # The line search evaluates value and gradient many times (compiled once); an optimizer
    # differentiates the density itself, so it needs no tape.
    target =
      Target.new(trace, sel,
        transforms: Keyword.get(opts, :transforms, %{}),
        jacobian: false,
        compile: optimizer == nil and steps > 0,
        caller: "Gen.Inference.map_optimize"
      )

    x = Mx.tensor(target.q0, type: :f64)

    new_xs =
      case optimizer do
        nil ->
          tol = Keyword.get(opts, :tol, 1.0e-6)

          unless is_number(tol) and tol >= 0 do
            raise ArgumentError, "Gen.Inference.map_optimize: tol: must be a non-negative number, got #{inspect(tol)}"
          end

          line_search(target, x, steps, tol, Gen.Inference.Common.positive!(opts, :step_size, 1.0, "Gen.Inference.map_optimize"))

        _ ->
          opt = Gen.Optim.optimizer!(opts, nil, "Gen.Inference.map_optimize")
          {p, _hist} = Gen.Optim.fit(fn p, _i -> Target.log_density(target, p) end, x, steps: steps, optimizer: opt)
          p
      end

    Target.write(target, trace, new_xs)
  end

  defp line_search(target, x, steps, tol, s0) do
    {lp, g} = eval_vg(target, x)
    loop(target, x, lp, g, s0, steps, tol)
  end

  defp loop(_target, x, _lp, _g, _s, 0, _tol), do: x

  defp loop(target, x, lp, g, s, steps, tol) do
    m = g |> Mx.abs() |> Mx.reduce_max() |> Mx.to_number()

    unless is_float(m) do
      raise ArgumentError,
            "Gen.Inference.map_optimize: the gradient of the log joint is #{inspect(m)} at the start; start from a trace where the log joint and its gradient are finite"
    end

    if m <= tol do
      x
    else
      case backtrack(target, x, lp, g, dot(g, g), s) do
        nil -> x
        {s_ok, x2, lp2, g2} -> loop(target, x2, lp2, g2, 2 * s_ok, steps - 1, tol)
      end
    end
  end

  defp backtrack(_target, _x, _lp, _g, _gg, s) when s < @min_step, do: nil

  defp backtrack(target, x, lp, g, gg, s) do
    x2 = Mx.add(x, Mx.multiply(g, s))
    {lp2, g2} = eval_vg(target, x2)

    # Armijo's sufficient increase; -Inf or NaN (outside the support) fails it. Where the change is
    # lost in rounding, the slope φ'(s) = ∇f(x')·g ≥ 0 instead: x' is short of the maximum on the line.
    ok? =
      is_float(lp2) and
        (lp2 >= lp + @armijo * s * gg or
           (abs(lp2 - lp) <= 1.0e-9 * (1 + abs(lp)) and dot(g2, g) >= 0))

    if ok?, do: {s, x2, lp2, g2}, else: backtrack(target, x, lp, g, gg, s / 2)
  end

  defp dot(a, b), do: Mx.multiply(a, b) |> Mx.sum() |> Mx.to_number()

  defp eval_vg(target, x) do
    {lp, g} = Target.value_and_grad_array(target, Mx.eval(x))
    {Mx.to_number(lp), g}
  end
end
