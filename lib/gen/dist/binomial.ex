defmodule Gen.Dist.Binomial do
  @moduledoc """
  Binomial distribution: successes in `n` Bernoulli(`p`) trials, on
  `0..n`. Log-mass `log C(n, k) + k log p + (n - k) log(1 - p)` with the
  binomial coefficient from `Mx.lgamma/1`; `-Inf` off the integers `0..n`.

  Draws are `:s64`, by inverting the CDF `P(K <= k) = I_{1-p}(n - k, k + 1)`
  (`Mx.betainc/3`) with a bisection over `0..n`: `ceil(log2(n + 1))` batched
  steps, so the graph is small however large `n` is.

      iex> d = Gen.Dist.binomial(4, 0.5)
      iex> Gen.Dist.logpdf(d, Mx.tensor([0, 2, 5])) |> Mx.to_list()
      [-2.772588722239781, -0.980829253011726, :neg_infinity]
  """

  defstruct [:n, :p]
  @type t :: %__MODULE__{n: Mx.t(), p: Mx.t()}

  @doc "A binomial distribution with `n >= 0` integer trials and success probability `p` in [0, 1]."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(n, p) do
    %__MODULE__{
      n:
        Gen.Dist.param!(
          n,
          "binomial",
          "n",
          {&(&1 >= 0 and &1 == Float.floor(&1 * 1.0)), "an integer >= 0"}
        ),
      p: Gen.Dist.param!(p, "binomial", "p", {&(&1 >= 0 and &1 <= 1), "in [0, 1]"})
    }
  end

  defimpl Gen.Distribution do
    def sample(d, key), do: draw(d, key, nil)
    def sample_n(d, key, n), do: draw(d, key, n)

    defp draw(%{n: n, p: p}, key, draws) do
      {_, batch} = Gen.Dist.batch("binomial", [n, p])
      shape = if draws, do: Tuple.insert_at(batch, 0, draws), else: batch
      n = n |> Mx.as_type(:f64) |> Mx.broadcast(shape)
      q = p |> Mx.as_type(:f64) |> Mx.negate() |> Mx.add(1.0) |> Mx.broadcast(shape)
      u = Mx.Random.uniform(key, shape: shape, type: :f64)
      # Invariant: CDF(lo) < u <= CDF(hi), with CDF(-1) = 0 and CDF(n) = 1; the answer is hi.
      steps =
        n
        |> Mx.reduce_max()
        |> Mx.to_number()
        |> Kernel.+(1)
        |> :math.log2()
        |> Float.ceil()
        |> trunc()

      {_lo, hi} =
        Enum.reduce(1..steps//1, {Mx.full(shape, -1.0, type: :f64), n}, fn _, {lo, hi} ->
          mid = Mx.floor(Mx.divide(Mx.add(lo, hi), 2.0))
          open = Mx.greater(Mx.subtract(hi, lo), 1.0)

          # Where the interval is closed, mid may be -1: evaluate at 0 instead (the result is unused).
          m = Mx.clip(mid, 0.0, Mx.max(Mx.subtract(n, 1.0), 0.0))
          cdf = Mx.betainc(Mx.max(Mx.subtract(n, m), 1.0), Mx.add(m, 1.0), q)
          up = Mx.logical_and(open, Mx.greater_equal(cdf, u))
          down = Mx.logical_and(open, Mx.logical_not(up))
          {Mx.select(down, mid, lo), Mx.select(up, mid, hi)}
        end)

      Mx.as_type(hi, :s64)
    end

    def logpdf(%{n: n, p: p}, value) do
      x = value |> Gen.Dist.value!("binomial") |> Mx.as_type(Mx.type(Mx.add(n, p)))

      inside =
        Mx.logical_and(
          Mx.logical_and(Mx.greater_equal(x, 0.0), Mx.less_equal(x, n)),
          Mx.equal(Mx.floor(x), x)
        )

      k = Mx.select(inside, x, 0.0)
      nk = Mx.subtract(n, k)

      lp =
        Mx.lgamma(Mx.add(n, 1.0))
        |> Mx.subtract(Mx.add(Mx.lgamma(Mx.add(k, 1.0)), Mx.lgamma(Mx.add(nk, 1.0))))
        |> Mx.add(Mx.xlogy(k, p))
        |> Mx.add(Mx.xlog1py(nk, Mx.negate(p)))

      valid =
        Mx.logical_and(
          Mx.logical_and(Mx.greater_equal(p, 0.0), Mx.less_equal(p, 1.0)),
          Mx.greater_equal(n, 0.0)
        )

      Gen.Dist.restrict(lp, inside, valid)
    end

    def reparameterized?(_), do: false

    def support(_d), do: :discrete
  end
end
