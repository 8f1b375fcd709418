defmodule Gen.Dist.Dirichlet do
  @moduledoc """
  Dirichlet distribution on the simplex, concentrations `alpha` on the last
  axis (`{..., k}`; leading axes are the batch). Log-density
  `log Γ(Σα) - Σ log Γ(α_i) + Σ (α_i - 1) log x_i`, summed over the last
  axis; `-Inf` where a component is outside [0, 1] or the components do not
  sum to 1 (within 1e-10 in f64, as scipy's check, or 1e-5 if
  the value or `alpha` is f32). Draws are
  normalized gammas (`Mx.Random.dirichlet/3`), not reparameterized. Invalid
  parameters follow `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise
  (an `alpha` component `<= 0`).

      iex> d = Gen.Dist.dirichlet([1.0, 2.0, 3.0])
      iex> Gen.Dist.logpdf(d, [[0.2, 0.3, 0.5], [0.5, 0.6, -0.1]]) |> Mx.to_list()
      [1.5040773967762737, :neg_infinity]
  """

  defstruct [:alpha]
  @type t :: %__MODULE__{alpha: Mx.t()}

  @doc "A Dirichlet distribution with concentrations `alpha > 0` (`{..., k}`; checked when constant)."
  @spec new(Mx.tensor_like()) :: t()
  def new(alpha) do
    alpha = Gen.Dist.param!(alpha, "dirichlet", "alpha", {:positive, "> 0"})

    if Mx.rank(alpha) < 1 do
      raise ArgumentError,
            "Gen.Dist.dirichlet: alpha must have the components on a last axis, got #{Mx.describe(alpha)}"
    end

    %__MODULE__{alpha: alpha}
  end

  defimpl Gen.Distribution do
    def sample(%{alpha: a}, key), do: Mx.Random.dirichlet(key, a, type: Mx.type(a))

    def sample_n(%{alpha: a}, key, n) do
      batch = Tuple.delete_at(Mx.shape(a), Mx.rank(a) - 1)
      Mx.Random.dirichlet(key, a, shape: Tuple.insert_at(batch, 0, n), type: Mx.type(a))
    end

    def logpdf(%{alpha: a}, value) do
      x = Gen.Dist.value!(value, "dirichlet")
      # The simplex check allows the rounding of the coarser of the value's and alpha's types.
      tol = if Mx.type(a) == :f64 and Mx.type(x) == :f64, do: 1.0e-10, else: 1.0e-5
      x = Mx.as_type(x, Mx.type(a))
      in_box = Mx.all(Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.less_equal(x, 1.0)), axes: [-1])
      on_simplex = Mx.less_equal(Mx.abs(Mx.subtract(Mx.sum(x, axes: [-1]), 1.0)), tol)
      safe = Mx.select(Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.less_equal(x, 1.0)), x, 0.5)
      norm = Mx.subtract(Mx.lgamma(Mx.sum(a, axes: [-1])), Mx.sum(Mx.lgamma(a), axes: [-1]))
      lp = Mx.add(norm, Mx.sum(Mx.xlogy(Mx.subtract(a, 1.0), safe), axes: [-1]))

      Gen.Dist.restrict(lp,
        inside: Mx.logical_and(in_box, on_simplex),
        invalid: Mx.any(Gen.Dist.invalid(a, :positive), axes: [-1])
      )
    end

    def reparameterized?(_), do: false

    def support(_d), do: :simplex
  end
end
