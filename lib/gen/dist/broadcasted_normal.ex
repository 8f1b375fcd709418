defmodule Gen.Dist.BroadcastedNormal do
  @moduledoc """
  Independent normals over a whole array, as Gen.jl's `broadcasted_normal`
  (`Gen.Dist.broadcasted_normal/2`): the value is an array of the broadcast
  shape of `mu` and `sigma` (the event shape) and its log-density is the sum
  of the elementwise normal log-densities over those axes. A value with extra
  leading axes (say `[N | event]` for N particles) gets one score per leading
  index. Reparameterized, as `Gen.Dist.Normal`. Invalid parameters follow
  `Gen.Dist`'s rule: raise for a constant, `-Inf` otherwise (`sigma <= 0`).

      iex> d = Gen.Dist.broadcasted_normal(Mx.tensor([0.0, 1.0], type: :f64), 1.0)
      iex> Gen.Dist.logpdf(d, Mx.tensor([0.0, 1.0])) |> Mx.to_number()
      -1.8378770664093456
      iex> Gen.Dist.logpdf(d, Mx.tensor([[0.0, 1.0], [1.0, 1.0]])) |> Mx.to_list()
      [-1.8378770664093456, -2.3378770664093453]
  """

  defstruct [:mu, :sigma, :event_shape]
  @type t :: %__MODULE__{mu: Mx.t(), sigma: Mx.t(), event_shape: tuple()}

  @doc "A broadcasted normal with `mu` finite and `sigma > 0` (checked when constant)."
  @spec new(Mx.tensor_like(), Mx.tensor_like()) :: t()
  def new(mu, sigma) do
    mu = Gen.Dist.param!(mu, "broadcasted_normal", "mu", :finite)
    sigma = Gen.Dist.param!(sigma, "broadcasted_normal", "sigma", :positive)
    {_type, shape} = Gen.Dist.batch("broadcasted_normal", [mu, sigma])
    %__MODULE__{mu: mu, sigma: sigma, event_shape: shape}
  end

  defimpl Gen.Distribution do
    def logpdf(%{mu: mu, sigma: sigma, event_shape: event}, x) do
      lp = Gen.Dist.Normal.logpdf(Gen.Dist.value!(x, "broadcasted_normal"), mu, sigma)
      {rank, r} = {tuple_size(Mx.shape(lp)), tuple_size(event)}

      if r == 0, do: lp, else: Mx.sum(lp, axes: Enum.to_list((rank - r)..(rank - 1)))
    end

    def sample(d, key), do: draw(d, key, [])
    def sample_n(d, key, n), do: draw(d, key, [n])
    def reparameterized?(_d), do: true
    def support(_d), do: :real

    defp draw(%{mu: mu, sigma: sigma, event_shape: event}, key, lead) do
      {type, _} = Gen.Dist.batch("broadcasted_normal", [mu, sigma])
      Gen.Dist.Normal.draw(mu, sigma, key, List.to_tuple(lead ++ Tuple.to_list(event)), type)
    end
  end
end
