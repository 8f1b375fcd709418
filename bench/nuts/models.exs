defmodule Bench.NutsModels do
  @moduledoc false
  # The NUTS benchmark models as Gen generative functions: the seven models of
  # ../shared/bench/nuts (same priors, data and parameterisations as its .stan files) and a
  # logistic regression (bench/nuts/logistic.stan). Constrained scales are sampled on the log
  # scale through `transforms:`, as Stan does; tau's half-normal is a normal truncated to
  # [0, ∞). Each entry: the model, its arguments and observations, the selection, the
  # transforms, the parameter blocks (for Stan-style inits) and `report`, the quantities whose
  # bulk ESS is reported (Stan's harness reports theta and x, the transformed parameters, for
  # the non-centered models, so those are derived from the draws here too).
  import Gen

  def f64(xs), do: Mx.tensor(xs, type: :f64)

  def all(data, logistic) do
    [
      simple(data["simple"]),
      medium(data["medium"]),
      stress(data["stress"]),
      eight_schools(data["eight_schools"], :centered),
      eight_schools(data["eight_schools"], :non_centered),
      funnel(:centered),
      funnel(:non_centered),
      logistic(logistic)
    ]
  end

  def simple(%{"y" => y}) do
    n = length(y)

    gf =
      gen(fn n ->
        mu = trace(:mu, Gen.Dist.normal(0.0, 10.0))
        sigma = trace(:sigma, Gen.Dist.exponential(1.0))
        trace(:y, Gen.Dist.broadcasted_normal(Mx.broadcast(mu, {n}), sigma))
      end)

    entry(
      "simple",
      gf,
      [n],
      %{y: f64(y)},
      [mu: {}, sigma: {}],
      %{sigma: :log},
      &scalars(&1, [:mu, :sigma])
    )
  end

  def medium(%{"y_a" => ya, "y_b" => yb}) do
    gf =
      gen(fn na, nb ->
        mu = trace(:mu_global, Gen.Dist.normal(0.0, 10.0))
        sg = trace(:sigma_global, Gen.Dist.exponential(1.0))
        alpha = trace(:alpha, Gen.Dist.normal(mu, sg))
        beta = trace(:beta, Gen.Dist.normal(mu, sg))
        so = trace(:sigma_obs, Gen.Dist.exponential(2.0))
        trace(:y_a, Gen.Dist.broadcasted_normal(Mx.broadcast(alpha, {na}), so))
        trace(:y_b, Gen.Dist.broadcasted_normal(Mx.broadcast(beta, {nb}), so))
      end)

    ps = [:mu_global, :sigma_global, :alpha, :beta, :sigma_obs]

    entry(
      "medium",
      gf,
      [length(ya), length(yb)],
      %{y_a: f64(ya), y_b: f64(yb)},
      Enum.map(ps, &{&1, {}}),
      %{sigma_global: :log, sigma_obs: :log},
      &scalars(&1, ps)
    )
  end

  def stress(%{"y_1" => y1, "y_2" => y2, "y_3" => y3}) do
    gf =
      gen(fn ns ->
        mu = trace(:mu_pop, Gen.Dist.normal(0.0, 10.0))
        sp = trace(:sigma_pop, Gen.Dist.exponential(0.5))
        group = trace(:group, Gen.Dist.broadcasted_normal(Mx.broadcast(mu, {3}), sp))
        noise = trace(:noise, Gen.Dist.exponential(Mx.ones({3}, type: :f64)))

        for {n, k} <- Enum.with_index(ns) do
          trace({:y, k}, Gen.Dist.broadcasted_normal(Mx.broadcast(group[k], {n}), noise[k]))
        end
      end)

    obs = %{{:y, 0} => f64(y1), {:y, 1} => f64(y2), {:y, 2} => f64(y3)}

    entry(
      "stress",
      gf,
      [[length(y1), length(y2), length(y3)]],
      obs,
      [mu_pop: {}, sigma_pop: {}, group: {3}, noise: {3}],
      %{sigma_pop: :log, noise: :log},
      fn d ->
        scalars(d, [:mu_pop, :sigma_pop]) ++ columns(d[[:group]]) ++ columns(d[[:noise]])
      end
    )
  end

  def eight_schools(%{"y" => y, "sigma" => sigma}, kind) do
    j = length(y)

    gf =
      case kind do
        :centered ->
          gen(fn j, sigma ->
            mu = trace(:mu, Gen.Dist.normal(0.0, 5.0))
            tau = trace(:tau, Gen.Dist.truncated_normal(0.0, 5.0, 0.0, :infinity))
            theta = trace(:theta, Gen.Dist.broadcasted_normal(Mx.broadcast(mu, {j}), tau))
            trace(:y, Gen.Dist.broadcasted_normal(theta, sigma))
          end)

        :non_centered ->
          gen(fn j, sigma ->
            mu = trace(:mu, Gen.Dist.normal(0.0, 5.0))
            tau = trace(:tau, Gen.Dist.truncated_normal(0.0, 5.0, 0.0, :infinity))
            tt = trace(:theta_tilde, Gen.Dist.broadcasted_normal(Mx.zeros({j}, type: :f64), 1.0))
            trace(:y, Gen.Dist.broadcasted_normal(Mx.add(mu, Mx.multiply(tau, tt)), sigma))
          end)
      end

    {name, blocks, report} =
      case kind do
        :centered ->
          {"eight_schools_c", [mu: {}, tau: {}, theta: {j}],
           fn d -> scalars(d, [:mu, :tau]) ++ columns(d[[:theta]]) end}

        :non_centered ->
          {"eight_schools_nc", [mu: {}, tau: {}, theta_tilde: {j}],
           fn d ->
             theta =
               Enum.zip_with([d[[:mu]], d[[:tau]], d[[:theta_tilde]]], fn [mu, tau, tt] ->
                 Enum.map(tt, &(mu + tau * &1))
               end)

             scalars(d, [:mu, :tau]) ++ columns(theta)
           end}
      end

    entry(name, gf, [j, f64(sigma)], %{y: f64(y)}, blocks, %{tau: :log}, report)
  end

  def funnel(kind) do
    gf =
      case kind do
        :centered ->
          gen(fn ->
            y = trace(:y, Gen.Dist.normal(0.0, 3.0))

            trace(
              :x,
              Gen.Dist.broadcasted_normal(Mx.zeros({9}, type: :f64), Mx.exp(Mx.divide(y, 2.0)))
            )
          end)

        :non_centered ->
          gen(fn ->
            trace(:y, Gen.Dist.normal(0.0, 3.0))
            trace(:x_raw, Gen.Dist.broadcasted_normal(Mx.zeros({9}, type: :f64), 1.0))
          end)
      end

    case kind do
      :centered ->
        entry("funnel", gf, [], %{}, [y: {}, x: {9}], %{}, fn d ->
          scalars(d, [:y]) ++ columns(d[[:x]])
        end)

      :non_centered ->
        report = fn d ->
          x =
            Enum.zip_with(d[[:y]], d[[:x_raw]], fn y, xr ->
              Enum.map(xr, &(:math.exp(y / 2) * &1))
            end)

          scalars(d, [:y]) ++ columns(x)
        end

        entry("funnel_nc", gf, [], %{}, [y: {}, x_raw: {9}], %{}, report)
    end
  end

  def logistic(%{x: x, y: y}) do
    {n, k} = Mx.shape(x)

    gf =
      gen(fn x ->
        alpha = trace(:alpha, Gen.Dist.normal(0.0, 2.5))
        beta = trace(:beta, Gen.Dist.broadcasted_normal(Mx.zeros({k}, type: :f64), 2.5))
        trace(:y, Gen.Dist.bernoulli(Mx.sigmoid(Mx.add(alpha, Mx.dot(x, beta)))))
      end)

    _ = n

    entry("logistic", gf, [x], %{y: y}, [alpha: {}, beta: {k}], %{}, fn d ->
      scalars(d, [:alpha]) ++ columns(d[[:beta]])
    end)
  end

  @doc "N rows of K standard-normal predictors and Bernoulli outcomes from fixed coefficients, from `key`."
  def logistic_data(key, n \\ 1000) do
    alpha = -0.3
    beta = f64([0.8, -0.5, 0.3, 1.2, -0.9])
    ks = Mx.Random.split(key)
    x = Mx.Random.normal(ks[0], shape: {n, 5}, type: :f64)
    p = Mx.sigmoid(Mx.add(alpha, Mx.dot(x, beta)))
    y = Mx.less(Mx.Random.uniform(ks[1], shape: {n}, type: :f64), p)
    Mx.eval([x, y])
    %{x: x, y: y}
  end

  defp entry(name, gf, args, obs, blocks, transforms, report) do
    %{
      name: name,
      gf: gf,
      args: args,
      obs: Gen.choicemap(obs),
      selection: Gen.select(Keyword.keys(blocks)),
      blocks: blocks,
      transforms: transforms,
      report: report
    }
  end

  defp scalars(d, names), do: Enum.map(names, &d[[&1]])
  defp columns(rows), do: rows |> Enum.zip() |> Enum.map(&Tuple.to_list/1)

  @doc """
  A starting trace as Stan initialises: each parameter uniform on (−2, 2) on its unconstrained
  scale, mapped back through its transform.
  """
  def init_trace(m, key) do
    {cm, _} =
      Enum.reduce(m.blocks, {m.obs, 0}, fn {addr, shape}, {cm, i} ->
        u = Mx.Random.uniform(Mx.Random.fold_in(key, i), -2.0, 2.0, shape: shape, type: :f64)

        x =
          case Map.get(m.transforms, addr, :identity) do
            :identity -> u
            :log -> Mx.exp(u)
          end

        Mx.eval(x)
        {Gen.Choicemap.put(cm, addr, x), i + 1}
      end)

    {t, _} = Gen.generate(m.gf, m.args, cm, key: key)
    t
  end

  @doc """
  The `simple` model's log density (mu, log sigma) two ways, for timing gradients: `:gfi` as the
  sampler evaluates it (exp for sigma's :log transform plus its log-Jacobian, assess on the trace's
  choicemap with the two leaves replaced) and `:direct` written in Mx ops; `:args` a fresh argument list.
  """
  def simple_densities(m, data) do
    cm = m |> init_trace(Mx.Random.key(7)) |> Gen.get_choices()
    ys = Mx.tensor(data["simple"]["y"], type: :f64)
    n_y = length(data["simple"]["y"]) * 1.0

    gfi = fn [mu, lsig] ->
      c = cm |> Gen.Choicemap.put([:mu], mu) |> Gen.Choicemap.put([:sigma], Mx.exp(lsig))
      {w, _} = Gen.assess(m.gf, m.args, c)
      Mx.add(w, Mx.sum(lsig))
    end

    direct = fn [mu, lsig] ->
      sig = Mx.exp(lsig)
      z = Mx.divide(Mx.subtract(ys, mu), sig)
      ll = Mx.subtract(Mx.multiply(Mx.sum(Mx.multiply(z, z)), -0.5), Mx.multiply(lsig, n_y))
      Mx.add(Mx.add(ll, Mx.multiply(Mx.square(mu), -0.005)), Mx.add(Mx.negate(sig), lsig))
    end

    args = fn ->
      [
        Mx.from_binary(<<0.5::float-64-native>>, :f64, shape: {}),
        Mx.from_binary(<<0.2::float-64-native>>, :f64, shape: {})
      ]
    end

    %{gfi: gfi, direct: direct, args: args}
  end

  # eight_schools_nc's log density over (mu, log tau, theta_tilde[8]), as simple_densities/2:
  # through Gen.assess (with the log transform's Jacobian) and written directly in Mx ops
  # (up to constants; bench/grad_floor.c computes the same function by hand).
  def eight_schools_nc_densities(m, data) do
    cm = m |> init_trace(Mx.Random.key(7)) |> Gen.get_choices()
    ys = Mx.tensor(data["eight_schools"]["y"], type: :f64)
    sigmas = Mx.tensor(data["eight_schools"]["sigma"], type: :f64)

    gfi = fn [mu, ltau, tt] ->
      c =
        cm
        |> Gen.Choicemap.put([:mu], mu)
        |> Gen.Choicemap.put([:tau], Mx.exp(ltau))
        |> Gen.Choicemap.put([:theta_tilde], tt)

      {w, _} = Gen.assess(m.gf, m.args, c)
      Mx.add(w, ltau)
    end

    direct = fn [mu, ltau, tt] ->
      tau = Mx.exp(ltau)
      r = Mx.divide(Mx.subtract(ys, Mx.add(mu, Mx.multiply(tau, tt))), sigmas)
      prior = Mx.add(Mx.square(Mx.divide(mu, 5.0)), Mx.square(Mx.divide(tau, 5.0)))
      quad = Mx.add(Mx.sum(Mx.square(tt)), Mx.sum(Mx.square(r)))
      Mx.add(Mx.subtract(ltau, Mx.multiply(prior, 0.5)), Mx.multiply(quad, -0.5))
    end

    args = fn ->
      tt = for i <- 0..7, into: <<>>, do: <<0.1 * i - 0.3::float-64-native>>

      [
        Mx.from_binary(<<1.5::float-64-native>>, :f64, shape: {}),
        Mx.from_binary(<<0.4::float-64-native>>, :f64, shape: {}),
        Mx.from_binary(tt, :f64, shape: {8})
      ]
    end

    %{gfi: gfi, direct: direct, args: args}
  end

  @doc """
  Runs bench/grad_floor.c (the hand-written log density + gradient of `simple` and
  `eight_schools_nc`, built here if needed) on the benchmark's data for `rounds` rounds and
  returns its `kv` lines as a map (e.g. "simple_ns" => "28.4").
  """
  def grad_floor(data, rounds) do
    root = Path.expand("../..", __DIR__)
    bin = Path.join(root, "_build/bench/grad_floor")

    {_, 0} =
      System.cmd("make", ["-s", "-C", Path.join(root, "bench"), bin], stderr_to_stdout: true)

    file = Path.join(System.tmp_dir!(), "genmx_grad_floor_#{System.os_time()}.txt")
    rows = [data["simple"]["y"], data["eight_schools"]["y"], data["eight_schools"]["sigma"]]
    File.write!(file, Enum.map_join(rows, "\n", &Enum.join(&1, " ")) <> "\n")
    {out, 0} = System.cmd(bin, [file, to_string(rounds)])
    File.rm(file)

    for "kv " <> line <- String.split(out, "\n"), into: %{} do
      [k, v] = String.split(line, "=", parts: 2)
      {k, v}
    end
  end
end
