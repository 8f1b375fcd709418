defmodule Gen.DistCustomTest.Laplace do
  # A distribution as a plain module with the callbacks, as a script would define it.
  def logpdf(%{mu: mu, b: b}, x),
    do: Mx.negate(Mx.add(Mx.divide(Mx.abs(Mx.subtract(x, mu)), b), :math.log(2 * b)))

  def sample(%{mu: mu, b: b}, key),
    do: Mx.add(mu, Mx.multiply(b, Mx.Random.laplace(key, type: :f64)))
end

defmodule Gen.DistCustomTest do
  use ExUnit.Case, async: true
  import Gen
  import Gen.TestHelpers
  alias Gen.DistCustomTest.Laplace

  doctest Gen.Dist.Custom

  defp ln_laplace(x, mu, b), do: -abs(x - mu) / b - :math.log(2 * b)

  defp laplace_fns(mu, b) do
    Gen.Dist.custom(
      name: "laplace",
      params: %{mu: mu, b: b},
      logpdf: &Laplace.logpdf(%{mu: mu, b: b}, &1),
      sample: &Laplace.sample(%{mu: mu, b: b}, &1)
    )
  end

  test "the protocol is consolidated here, as under mix run" do
    assert Protocol.consolidated?(Gen.Distribution)
  end

  for {name, build} <- [{"from functions", :fns}, {"from a module", :module}] do
    test "#{name}: scored and sampled by the GFI, scalar and vectorized" do
      d = fn mu, b ->
        if unquote(build) == :fns,
          do: laplace_fns(mu, b),
          else: Gen.Dist.custom(Laplace, %{mu: mu, b: b})
      end

      m =
        gen(fn ->
          mu = trace(:mu, Gen.Dist.normal(0.0, 1.0))
          trace(:x, d.(mu, 2.0))
        end)

      {t, w} = generate(m, [], %{mu: 0.5, x: -1.0})
      assert_close(num(w), ln_normal(0.5, 0.0, 1.0) + ln_laplace(-1.0, 0.5, 2.0))

      t2 = simulate(m, [], key: Mx.Random.key(0))

      assert_close(
        num(t2.score),
        ln_normal(num(t2[:mu]), 0.0, 1.0) + ln_laplace(num(t2[:x]), num(t2[:mu]), 2.0)
      )

      {t3, w3, _, _} = update(t, %{mu: 1.5})
      assert_close(num(w3), ln_normal(1.5, 0.0, 1.0) + ln_laplace(-1.0, 1.5, 2.0) - num(w))
      assert num(t3[:x]) == -1.0

      # Vectorized: shared parameters draw for every particle; per-particle ones raise (their functions
      # take one particle's parameters), saying to run the scalar GFI.
      shared =
        gen(fn ->
          _mu = trace(:mu, Gen.Dist.normal(0.0, 1.0))
          trace(:x, d.(0.5, 2.0))
        end)

      vt = vsimulate(shared, [], 5, key: Mx.Random.key(1))
      assert Mx.shape(vt[:x]) == {5}
      assert length(Enum.uniq(Mx.to_list(vt[:x]))) == 5

      for {mu, x, s} <- Enum.zip([Mx.to_list(vt[:mu]), Mx.to_list(vt[:x]), Mx.to_list(vt.score)]) do
        assert_close(s, ln_normal(mu, 0.0, 1.0) + ln_laplace(x, 0.5, 2.0))
      end

      assert_raise ArgumentError, ~r/parameters are per particle cannot draw under a particle batch yet/, fn ->
        vsimulate(m, [], 5, key: Mx.Random.key(1))
      end
    end
  end

  test "draws follow the distribution: the mean and mean |x - mu| of 4000 draws within 4 standard errors" do
    # Laplace(1, 2): mean 1, sd 2√2; |x - 1| is exponential with mean 2 and sd 2.
    xs = Gen.Dist.sample_n(laplace_fns(1.0, 2.0), Mx.Random.key(3), 4000) |> Mx.to_list()
    n = length(xs)
    assert abs(Enum.sum(xs) / n - 1.0) < 4 * 2 * :math.sqrt(2) / :math.sqrt(n)
    assert abs(Enum.sum(Enum.map(xs, &abs(&1 - 1.0))) / n - 2.0) < 4 * 2 / :math.sqrt(n)
  end

  test "gradient-based inference: MAP finds the median of a Laplace likelihood" do
    m =
      gen(fn ->
        mu = trace(:mu, Gen.Dist.flat())
        for i <- 0..2, do: trace({:y, i}, laplace_fns(mu, 1.0))
      end)

    {t, _} = generate(m, [], %{:mu => 0.0, {:y, 0} => 0.5, {:y, 1} => 2.0, {:y, 2} => 3.0})

    t =
      Gen.Inference.map_optimize(t, select(:mu),
        optimizer: Gen.Optim.adam(learning_rate: 0.05),
        steps: 400
      )

    assert abs(num(t[:mu]) - 2.0) < 0.05
  end

  test "a script under mix run (consolidated protocols): custom/2 works, a defimpl does not and the error says so" do
    dir = Path.join(System.tmp_dir!(), "genmx_custom_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    script = Path.join(dir, "script.exs")

    File.write!(script, ~S"""
    defmodule ScriptLaplace do
      def logpdf(%{mu: mu, b: b}, x), do: Mx.negate(Mx.add(Mx.divide(Mx.abs(Mx.subtract(x, mu)), b), :math.log(2 * b)))
      def sample(%{mu: mu, b: b}, key), do: Mx.add(mu, Mx.multiply(b, Mx.Random.laplace(key, type: :f64)))
    end

    defmodule ScriptDist do
      defstruct [:s]
    end

    defimpl Gen.Distribution, for: ScriptDist do
      def logpdf(_, _), do: Mx.tensor(0.0)
      def sample(_, _), do: Mx.tensor(0.0)
      def sample_n(_, _, _), do: Mx.tensor(0.0)
      def reparameterized?(_), do: false
    end

    import Gen
    m = gen fn -> trace(:x, Gen.Dist.custom(ScriptLaplace, %{mu: 1.0, b: 2.0})) end
    {_t, w} = Gen.generate(m, [], %{x: 3.0})
    x = Gen.simulate(m, [], key: Mx.Random.key(0)) |> Gen.get_retval() |> Mx.to_number()
    IO.puts("consolidated=#{Protocol.consolidated?(Gen.Distribution)} weight=#{Mx.to_number(w)} draw=#{is_float(x)}")
    bad = gen fn -> trace(:h, struct(ScriptDist, s: 1)) end

    try do
      Gen.simulate(bad, [])
    rescue
      e -> IO.puts("defimpl: " <> Exception.message(e))
    end
    """)

    {out, status} =
      System.cmd("mix", ["run", "--no-compile", script],
        env: [{"MIX_ENV", "test"}],
        stderr_to_stdout: true
      )

    File.rm_rf!(dir)
    assert status == 0, out
    assert out =~ "consolidated=true weight=#{ln_laplace(3.0, 1.0, 2.0)} draw=true"
    assert out =~ "defimpl: trace: expected a distribution or a generative function at address :h"
    assert out =~ "use Gen.Dist.custom/1 or /2"
  end

  test "errors name the distribution and the fix" do
    assert_raise ArgumentError, ~r/unknown option logp: \(did you mean logpdf:\?\)/, fn ->
      Gen.Dist.custom(logp: fn x -> x end)
    end

    assert_raise ArgumentError, ~r/logpdf: must be a function of 1/, fn ->
      Gen.Dist.custom(sample: fn k -> k end)
    end

    assert_raise ArgumentError, ~r/must define logpdf\(params, value\)/, fn ->
      Gen.Dist.custom(Enum, %{})
    end

    d = Gen.Dist.custom(name: "unnormalized", logpdf: fn x -> Mx.negate(Mx.abs(x)) end)
    m = gen(fn -> trace(:x, d) end)

    assert_raise ArgumentError, ~r/unnormalized\) has no sample: function/, fn ->
      simulate(m, [])
    end

    {_t, w} = generate(m, [], %{x: -3.0})
    assert num(w) == -3.0

    bad = Gen.Dist.custom(name: "bad", logpdf: fn _ -> :oops end)

    assert_raise ArgumentError,
                 ~r/custom \(bad\): logpdf must return an Mx array or a number/,
                 fn -> Gen.Dist.logpdf(bad, 1.0) end

    assert inspect(laplace_fns(0.0, 1.0)) == "#Gen.Dist.Custom<laplace %{b: 1.0, mu: 0.0}>"
  end
end
