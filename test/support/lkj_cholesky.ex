defmodule Gen.Test.LKJCholesky do
  @moduledoc """
  A distribution for the transform tests on Cholesky factors L of p×p correlation matrices:
  Stan's `lkj_corr_cholesky(η)`, log p(L) = Σₖ₌₁^(p−1) (p − k − 1 + 2(η − 1)) log Lₖₖ (0-based
  k), up to its normalizing constant (the tests need none). Its support is `:corr_cholesky`, so
  gradient-based inference moves it through that transform. The correlation matrix L Lᵀ is then
  LKJ(η): each off-diagonal entry is Beta(η − 1 + p/2, η − 1 + p/2) on (−1, 1) (Lewandowski,
  Kurowicka & Joe 2009). Draws as Stan's `lkj_corr_cholesky_rng`: canonical partial correlations
  in column i are 2·Beta(αᵢ, αᵢ) − 1 with αᵢ = η + (p − 2 − i)/2, mapped to L.
  """

  defstruct [:eta, :p]

  def new(eta, p) when is_number(eta) and eta > 0 and is_integer(p) and p >= 2,
    do: %__MODULE__{eta: eta * 1.0, p: p}

  defimpl Gen.Distribution do
    def logpdf(%{eta: eta, p: p}, value) do
      l = Gen.Dist.value!(value, "lkj_cholesky")

      w =
        Mx.tensor(for(k <- 0..(p - 1), do: if(k == 0, do: 0.0, else: p - k - 1 + 2 * (eta - 1))),
          type: :f64
        )

      lp = Mx.sum(Mx.multiply(w, Mx.log(Mx.Linalg.diagonal(l))))

      if Gen.Transform.inside?(:corr_cholesky, l),
        do: lp,
        else: Mx.tensor(:neg_infinity, type: :f64)
    end

    def sample(%{eta: eta, p: p}, key) do
      # Partial correlations in the transform's packing (strict lower triangle, row by row).
      alphas = for r <- 0..(p - 1), c <- 0..(p - 1), r > c, do: eta + (p - 2 - c) / 2
      a = Mx.tensor(alphas, type: :f64)
      z = Mx.subtract(Mx.multiply(Mx.Random.beta(key, a, a, type: :f64), 2.0), 1.0)
      y = Mx.multiply(Mx.subtract(Mx.log1p(z), Mx.log1p(Mx.negate(z))), 0.5)
      elem(Gen.Transform.constrain(:corr_cholesky, y), 0)
    end

    def sample_n(d, key, n) do
      keys = Mx.Random.split(key, n)
      Mx.stack(for i <- 0..(n - 1), do: sample(d, keys[i]))
    end

    def reparameterized?(_d), do: false
    def support(_d), do: :corr_cholesky
  end
end
