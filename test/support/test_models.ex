defmodule Gen.TestModels do
  @moduledoc false
  import Gen

  # A scalar site, a shared batched site, a per-particle site with an event axis, a per-particle
  # discrete site, and an observed site depending on an argument: the vectorized GFI's test model
  # (vectorized_test.exs, and vectorized_compiled_test.exs against the uncompiled runs).
  def small_model do
    gen(fn c ->
      mu = trace(:mu, Gen.Dist.normal(0.0, 1.0))
      _zs = trace(:zs, Gen.Dist.normal(Mx.zeros({3}, type: :f64), 2.0))
      mean = Mx.multiply(Mx.new_axis(mu, -1), Mx.tensor([1.0, -1.0], type: :f64))
      _v = trace(:v, Gen.Dist.multivariate_normal(mean, Mx.eye(2, type: :f64)))
      _b = trace(:b, Gen.Dist.bernoulli(Mx.sigmoid(mu)))
      trace(:y, Gen.Dist.normal(Mx.add(mu, c), 0.5))
    end)
  end
end
