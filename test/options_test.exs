defmodule GenMX.OptionsTest do
  # Every public function of the :genmx application that takes a keyword list rejects an unknown
  # key (Mx.Opts). The functions are discovered from the docs and specs, so a new one fails here
  # until it validates its options and has an example call below.
  use ExUnit.Case, async: true
  import Gen

  doctest Mx.Opts

  @bogus :bogus_option

  # ---- discovery ----------------------------------------------------------------------------

  # Public, documented functions of modules compiled from lib/ (not protocol implementations)
  # whose last parameter is named like options (opts, options, p_or_opts) or is typed keyword().
  defp option_functions do
    {:ok, mods} = :application.get_key(:genmx, :modules)

    for m <- mods,
        lib_module?(m),
        not function_exported?(m, :__impl__, 1),
        {:docs_v1, _, _, _, mdoc, _, docs} <- [Code.fetch_docs(m)],
        mdoc != :hidden,
        {{:function, name, arity}, _, sigs, doc, _} <- docs,
        doc != :hidden,
        arity > 0,
        options_by_name?(sigs) or options_by_spec?(m, name, arity),
        do: {m, name, arity}
  end

  defp lib_module?(m),
    do: m.module_info(:compile)[:source] |> to_string() |> String.contains?("/lib/")

  defp options_by_name?(sigs),
    do: Enum.any?(sigs, &(last_param(&1) =~ ~r/^(opts|options|\w+_opts)$/))

  # The last parameter's name in a doc signature such as "sum(a, opts \\\\ [])".
  defp last_param(sig) do
    case Regex.run(~r/\((.*)\)$/s, sig) do
      [_, params] ->
        params
        |> split_top_level()
        |> List.last("")
        |> String.split(" \\\\ ")
        |> hd()
        |> String.trim()

      nil ->
        ""
    end
  end

  defp split_top_level(s) do
    {parts, cur, _} =
      s
      |> String.graphemes()
      |> Enum.reduce({[], "", 0}, fn
        ",", {parts, cur, 0} -> {[cur | parts], "", 0}
        c, {parts, cur, d} when c in ["(", "[", "{"] -> {parts, cur <> c, d + 1}
        c, {parts, cur, d} when c in [")", "]", "}"] -> {parts, cur <> c, d - 1}
        c, {parts, cur, d} -> {parts, cur <> c, d}
      end)

    Enum.reverse([cur | parts])
  end

  defp options_by_spec?(m, name, arity) do
    with {:ok, specs} <- Code.Typespec.fetch_specs(m),
         {_, clauses} <- List.keyfind(specs, {name, arity}, 0) do
      Enum.any?(clauses, fn clause ->
        {:"::", _, [{_name, _, args}, _ret]} =
          case Code.Typespec.spec_to_quoted(name, clause) do
            {:when, _, [spec, _vars]} -> spec
            spec -> spec
          end

        args |> List.last() |> Macro.to_string() |> String.contains?(["keyword(", "Keyword.t("])
      end)
    else
      _ -> false
    end
  end

  # ---- one example call per function: the positional arguments before the options --------

  defp examples do
    key = Mx.Random.key(0)
    a = Mx.tensor([[1.0, 2.0], [3.0, 4.0]])

    m =
      gen(fn ->
        mu = trace(:mu, Gen.Dist.normal(0.0, 1.0))
        trace(:y, Gen.Dist.normal(mu, 1.0))
      end)

    q = gen(fn t -> trace(:mu, Gen.Dist.normal(t[:mu], 0.5)) end)
    {t, _} = Gen.generate(m, [], %{y: 0.5}, key: key)
    {vt, _} = Gen.vgenerate(m, [], %{y: 0.5}, 3, key: key)
    sel = Gen.select(:mu)
    inv = fn mc, aux, _ -> {mc, aux} end
    kernel = fn t, _opts -> {t, false} end
    args_fn = fn _t -> [] end
    obs = [%{y: 0.5}]
    smc_state = %{trace: vt, log_weights: Mx.zeros({3}, type: :f64), log_ml: 0.0}
    objective = fn p, _i -> p.x end
    params = %{x: Mx.tensor(0.0, type: :f64)}
    draws = [[0.1, 0.2, 0.3, 0.4], [0.2, 0.1, 0.4, 0.3]]

    mx =
      for f <-
            [
              :all,
              :any,
              :argmax,
              :argmin,
              :argsort,
              :cumulative_max,
              :cumulative_min,
              :cumulative_product
            ] ++
              [
                :cumulative_sum,
                :logsumexp,
                :mean,
                :product,
                :reduce_max,
                :reduce_min,
                :reverse,
                :sort
              ] ++
              [:squeeze, :sum, :transpose, :tensor],
          into: %{},
          do: {{Mx, f, 2}, [a]}

    fft =
      for f <- [:fft, :fft2, :fftn, :ifft, :ifft2, :ifftn, :irfft, :rfft],
          into: %{},
          do: {{Mx.FFT, f, 2}, [a]}

    linalg =
      for f <- [:diag, :diagonal, :norm, :qr, :svd, :trace],
          into: %{},
          do: {{Mx.Linalg, f, 2}, [a]}

    random2 =
      for f <- [:bits, :cauchy, :gumbel, :laplace, :normal, :uniform],
          into: %{},
          do: {{Mx.Random, f, 2}, [key]}

    random4 =
      for f <- [:cauchy, :gumbel, :laplace, :normal, :uniform],
          into: %{},
          do: {{Mx.Random, f, 4}, [key, 0.0, 1.0]}

    Enum.reduce([mx, fft, linalg, random2, random4], %{}, &Map.merge/2)
    |> Map.merge(%{
      {Mx, :arange, 4} => [0, 3, 1],
      {Mx, :compile, 2} => [&Mx.negate/1],
      {Mx.Compile, :compile, 2} => [&Mx.negate/1],
      {Mx, :concatenate, 2} => [[a, a]],
      {Mx, :eye, 2} => [2],
      {Mx, :from_binary, 3} => [<<0::32>>, :f32],
      {Mx, :full, 3} => [{2}, 1.0],
      {Mx, :iota, 2} => [{2}],
      {Mx, :linspace, 3} => [0, 1],
      {Mx, :ones, 2} => [{2}],
      {Mx, :slice, 4} => [a, [0, 0], [1, 1]],
      {Mx, :stack, 2} => [[a, a]],
      {Mx, :take, 3} => [a, Mx.tensor([0])],
      {Mx, :take_along_axis, 3} => [a, Mx.tensor([[0], [1]])],
      {Mx, :zeros, 2} => [{2}],
      {Mx, :softmax, 2} => [a],
      {Mx, :log_softmax, 2} => [a],
      {Mx, :var, 2} => [a],
      {Mx, :std, 2} => [a],
      {Mx, :topk, 3} => [a, 1],
      {Mx, :split, 3} => [a, 2],
      {Mx, :roll, 3} => [a, 1],
      {Mx, :associative_scan, 3} => [:add, a],
      {Mx.Linalg, :pinv, 2} => [a],
      {Mx, :conv, 3} => [Mx.ones({1, 1, 3}), Mx.ones({1, 1, 2})],
      {Mx, :window_sum, 3} => [a, {1, 1}],
      {Mx, :window_product, 3} => [a, {1, 1}],
      {Mx, :window_max, 3} => [a, {1, 1}],
      {Mx, :window_min, 3} => [a, {1, 1}],
      {Mx, :window_scatter_max, 5} => [a, a, 0.0, {1, 1}],
      {Mx, :window_scatter_min, 5} => [a, a, 0.0, {1, 1}],
      {Mx.Conv, :conv, 3} => [Mx.ones({1, 1, 3}), Mx.ones({1, 1, 2})],
      {Mx.Conv, :window_sum, 3} => [a, {1, 1}],
      {Mx.Conv, :window_product, 3} => [a, {1, 1}],
      {Mx.Conv, :window_max, 3} => [a, {1, 1}],
      {Mx.Conv, :window_min, 3} => [a, {1, 1}],
      {Mx.Conv, :window_scatter_max, 5} => [a, a, 0.0, {1, 1}],
      {Mx.Conv, :window_scatter_min, 5} => [a, a, 0.0, {1, 1}],
      {Mx.Linalg, :cross, 3} => [Mx.tensor([1.0, 0.0, 0.0]), Mx.tensor([0.0, 1.0, 0.0])],
      {Mx.Linalg, :triangular_solve, 3} => [a, a],
      {Mx.Random, :bernoulli, 3} => [key, 0.5],
      {Mx.Random, :beta, 4} => [key, 1.0, 1.0],
      {Mx.Random, :categorical, 3} => [key, Mx.tensor([0.0, 0.0])],
      {Mx.Random, :dirichlet, 3} => [key, Mx.tensor([1.0, 1.0])],
      {Mx.Random, :exponential, 3} => [key, 1.0],
      {Mx.Random, :gamma, 4} => [key, 1.0, 1.0],
      {Mx.Random, :multivariate_normal, 4} => [key, Mx.tensor([0.0]), Mx.tensor([[1.0]])],
      {Mx.Random, :permutation, 3} => [key, 4],
      {Mx.Random, :poisson, 3} => [key, 1.0],
      {Mx.Random, :randint, 4} => [key, 0, 5],
      {Mx.Random, :truncated_normal, 4} => [key, -1.0, 1.0],
      {Gen.Dist, :custom, 1} => [],
      {Gen.Dist, :bernoulli, 1} => [],
      {Gen.Dist, :flip, 1} => [],
      {Gen.Dist, :binomial, 2} => [10],
      {Gen.Dist, :binom, 2} => [10],
      {Gen.Dist, :categorical, 1} => [],
      {Gen.Dist, :gamma, 2} => [2.0],
      {Gen.Dist, :poisson, 1} => [],
      {Gen.Dist.Custom, :new, 1} => [],
      {Gen, :edit, 3} => [t, Gen.Edit.selection(sel)],
      {Gen, :generate, 4} => [m, [], %{}],
      {Gen, :propose, 3} => [m, []],
      {Gen, :regenerate, 3} => [t, sel],
      {Gen, :regenerate, 5} => [t, [], :no_change, sel],
      {Gen, :simulate, 3} => [m, []],
      {Gen, :update, 3} => [t, %{}],
      {Gen, :update, 5} => [t, [], :no_change, %{}],
      {Gen, :vgenerate, 5} => [m, [], %{}, 2],
      {Gen, :vsimulate, 4} => [m, [], 2],
      {Gen.Vectorized, :generate, 5} => [m, [], %{}, 2],
      {Gen.Vectorized, :propose, 4} => [m, [], 2],
      {Gen.Vectorized, :regenerate, 3} => [vt, sel],
      {Gen.Vectorized, :simulate, 4} => [m, [], 2],
      {Gen.Vectorized, :update, 5} => [vt, [], :no_change, %{}],
      {Gen.Combinators, :dimap, 2} => [m],
      {Gen.Combinators, :recurse, 2} => [fn _self -> m end],
      {Gen.Diagnostics, :ess, 2} => [draws],
      {Gen.Diagnostics, :rhat, 2} => [draws],
      {Gen.Optim, :adam, 1} => [],
      {Gen.Optim, :sgd, 1} => [],
      {Gen.Optim, :fit, 3} => [objective, params],
      {Gen.Inference, :advi, 5} => [m, [], obs, sel],
      {Gen.Inference, :csmc, 6} => [m, args_fn, obs, 2, t],
      {Gen.Inference, :elliptical_slice, 3} => [t, :mu],
      {Gen.Inference, :gibbs, 3} => [t, :mu],
      {Gen.Inference, :hmc, 3} => [t, sel],
      {Gen.Inference, :hmc_warmup, 3} => [t, sel],
      {Gen.Inference, :importance_resampling, 5} => [m, [], %{}, 2],
      {Gen.Inference, :importance_sampling, 5} => [m, [], %{}, 2],
      {Gen.Inference, :involutive_mh, 5} => [t, q, [], inv],
      {Gen.Inference, :mala, 3} => [t, sel],
      {Gen.Inference, :map_optimize, 3} => [t, sel],
      {Gen.Inference, :mh, 3} => [t, sel],
      {Gen.Inference, :mh, 4} => [t, q, []],
      {Gen.Inference, :nuts, 3} => [t, sel],
      {Gen.Inference, :particle_gibbs, 4} => [args_fn, obs, 2],
      {Gen.Inference, :run, 3} => [kernel, t],
      {Gen.Inference, :smc, 5} => [m, args_fn, obs, 2],
      {Gen.Inference, :smcp3, 5} => [m, args_fn, obs, 2],
      {Gen.Inference, :train, 4} => [m, params, []],
      {Gen.Inference, :vi, 6} => [m, [], obs, q, params],
      {Gen.Inference, :vimportance_sampling, 5} => [m, [], %{}, 2],
      {Gen.Inference, :vmala, 3} => [vt, sel],
      {Gen.Inference, :vhmc, 3} => [vt, sel],
      {Gen.Inference, :vsample, 3} => [vt, sel],
      {Gen.Inference, :vmh, 3} => [vt, sel],
      {Gen.Inference, :vsmc, 5} => [m, args_fn, obs, 2],
      {Gen.Inference.Adapt, :dual_averaging, 2} => [1.0],
      {Gen.Inference.Adapt, :windows, 2} => [100],
      {Gen.Inference.Kernel, :elliptical_slice, 2} => [:mu],
      {Gen.Inference.Kernel, :gibbs, 2} => [:mu],
      {Gen.Inference.Kernel, :involutive_mh, 4} => [q, [], inv],
      {Gen.Inference.NUTS, :nuts, 3} => [t, sel],
      {Gen.Inference.NUTS, :sample, 3} => [t, sel],
      {Gen.Inference.Target, :new, 3} => [t, sel],
      {Gen.Inference.SMC, :filter, 5} => [m, m, obs, 2],
      {Gen.Inference.VI, :advi, 5} => [m, [], obs, sel],
      {Gen.Inference.VI, :advi_draws, 6} => [
        m,
        [],
        %{y: 0.5},
        %{mu: Gen.choicemap(%{mu: 0.0}), log_sigma: Gen.choicemap(%{mu: 0.0})},
        1
      ],
      {Gen.Inference.VI, :elbo, 6} => [m, [], obs, q, params],
      {Gen.Inference.VI, :gradient, 6} => [m, [], obs, q, params],
      {Gen.Inference.VI, :iwelbo, 6} => [m, [], obs, q, params],
      {Gen.Inference.VI, :vi, 6} => [m, [], obs, q, params],
      {Gen.Inference.Vectorized, :importance_sampling, 5} => [m, [], %{}, 2],
      {Gen.Inference.Vectorized, :choice_gradients, 3} => [vt, sel],
      {Gen.Inference.Vectorized, :mala, 3} => [vt, sel],
      {Gen.Inference.Vectorized, :hmc, 3} => [vt, sel],
      {Gen.Inference.Vectorized, :sample, 3} => [vt, sel],
      {Gen.Inference.Vectorized, :mh, 3} => [vt, sel],
      {Gen.Inference.Vectorized, :run, 3} => [kernel, vt],
      {Gen.Inference.Vectorized, :smc, 5} => [m, args_fn, obs, 2],
      {Gen.Inference.Vectorized, :smc_init, 5} => [m, [], %{}, 2],
      {Gen.Inference.Vectorized, :smc_step, 4} => [smc_state, [], %{}],
      # Mx.Tree and Mx.IO (issue 13)
      {Mx.Tree, :map, 3} => [%{a: a}, & &1],
      {Mx.Tree, :map_with_path, 3} => [%{a: a}, fn _p, x -> x end],
      {Mx.Tree, :map_reduce, 4} => [%{a: a}, 0, &{&1, &2}],
      {Mx.Tree, :reduce, 4} => [%{a: a}, 0, fn _, n -> n + 1 end],
      {Mx.Tree, :leaves, 2} => [%{a: a}],
      {Mx.Tree, :replace_leaves, 3} => [%{a: a}, [a]],
      {Mx.Tree, :flatten, 2} => [%{a: a}],
      {Mx.Tree, :unflatten, 2} => [[{"a", a}]],
      {Mx.Tree, :zip_with, 3} => [[%{a: a}, %{a: a}], &hd/1],
      {Mx.IO, :load, 2} => ["/nonexistent/x.safetensors"],
      {Mx.IO, :load_safetensors, 2} => ["/nonexistent/x.safetensors"],
      {Mx.IO, :save_safetensors, 3} => ["/nonexistent/x.safetensors", %{"a" => a}],
      {Mx.IO, :savez, 3} => ["/nonexistent/x.npz", %{"a" => a}],
      {Mx.IO, :load_gguf, 2} => ["/nonexistent/x.gguf"],
      {Mx.IO, :save_gguf, 3} => ["/nonexistent/x.gguf", %{"a" => a}],
      # Mx.Optim (issue 13)
      {Mx.Optim, :sgd, 1} => [],
      {Mx.Optim, :rmsprop, 1} => [],
      {Mx.Optim, :adagrad, 1} => [],
      {Mx.Optim, :adadelta, 1} => [],
      {Mx.Optim, :adam, 1} => [],
      {Mx.Optim, :adamw, 1} => [],
      {Mx.Optim, :adamax, 1} => [],
      {Mx.Optim, :lion, 1} => [],
      {Mx.Optim, :adafactor, 1} => [],
      {Mx.Optim, :muon, 1} => []
    })
    |> Map.merge(nn_examples(key, a))
  end

  # Mx.NN (issue 13): every activation, loss, initializer and layer.
  defp nn_examples(key, a) do
    activations =
      for f <- Mx.NN.Activations.names(),
          function_exported?(Mx.NN.Activations, f, 2),
          into: %{},
          do: {{Mx.NN.Activations, f, 2}, [a]}

    losses2 =
      for f <-
            [
              :cross_entropy,
              :binary_cross_entropy,
              :l1_loss,
              :mse_loss,
              :nll_loss,
              :kl_div_loss,
              :smooth_l1_loss
            ] ++
              [:hinge_loss, :huber_loss, :log_cosh_loss, :cosine_similarity_loss],
          into: %{},
          do: {{Mx.NN.Losses, f, 3}, [a, a]}

    losses3 =
      for f <- [:triplet_loss, :margin_ranking_loss, :gaussian_nll_loss],
          into: %{},
          do: {{Mx.NN.Losses, f, 4}, [a, a, a]}

    inits =
      for f <- [
            :normal,
            :uniform,
            :glorot_normal,
            :glorot_uniform,
            :he_normal,
            :he_uniform,
            :orthogonal,
            :sparse
          ],
          into: %{},
          do: {{Mx.NN.Init, f, 3}, [key, {2, 2}]}

    layers =
      for m <-
            [
              Mx.NN.Linear,
              Mx.NN.Bilinear,
              Mx.NN.Identity,
              Mx.NN.PReLU,
              Mx.NN.Embedding,
              Mx.NN.Sequential
            ] ++
              [
                Mx.NN.LayerNorm,
                Mx.NN.RMSNorm,
                Mx.NN.GroupNorm,
                Mx.NN.InstanceNorm,
                Mx.NN.BatchNorm,
                Mx.NN.Dropout
              ] ++
              [
                Mx.NN.Dropout2d,
                Mx.NN.Dropout3d,
                Mx.NN.RoPE,
                Mx.NN.SinusoidalPositionalEncoding,
                Mx.NN.ALiBi,
                Mx.NN.RNN
              ] ++
              [
                Mx.NN.GRU,
                Mx.NN.LSTM,
                Mx.NN.MultiHeadAttention,
                Mx.NN.TransformerEncoderLayer,
                Mx.NN.TransformerDecoderLayer
              ] ++
              [Mx.NN.Conv1d, Mx.NN.Conv2d, Mx.NN.Conv3d, Mx.NN.ConvTranspose1d, Mx.NN.ConvTranspose2d] ++
              [Mx.NN.ConvTranspose3d, Mx.NN.MaxPool1d, Mx.NN.MaxPool2d, Mx.NN.MaxPool3d, Mx.NN.AvgPool1d] ++
              [Mx.NN.AvgPool2d, Mx.NN.AvgPool3d, Mx.NN.Upsample],
          f <- [:init, :apply],
          into: %{},
          do: {{m, f, if(f == :init, do: 2, else: 3)}, if(f == :init, do: [key], else: [%{}, a])}

    [activations, losses2, losses3, inits, layers]
    |> Enum.reduce(&Map.merge/2)
    |> Map.merge(%{
      {Mx.NN.Bilinear, :apply, 3} => [%{}, {a, a}],
      {Mx.NN.TransformerDecoderLayer, :apply, 3} => [%{}, {a, a}],
      {Mx.NN.Init, :constant, 3} => [{2}, 1.0],
      {Mx.NN.Init, :identity, 2} => [{2, 2}],
      {Mx.NN, :count_params, 2} => [%{a: a}],
      {Mx.NN, :scaled_dot_product_attention, 4} => [a, a, a]
    })
    |> Map.merge(quant_examples())
    |> Map.merge(quantized_layer_examples(key))
    |> Map.merge(llama_examples())
  end

  # Mx.NN.QuantizedLinear, Mx.NN.QuantizedEmbedding, Mx.NN.quantize (issue 13).
  defp quantized_layer_examples(key) do
    w = %{weight: Mx.ones({2, 64})}

    %{
      {Mx.NN.QuantizedLinear, :init, 2} => [key],
      {Mx.NN.QuantizedLinear, :apply, 3} => [%{}, Mx.ones({1, 64})],
      {Mx.NN.QuantizedLinear, :from_linear, 2} => [w],
      {Mx.NN.QuantizedEmbedding, :init, 2} => [key],
      {Mx.NN.QuantizedEmbedding, :apply, 3} => [%{}, Mx.tensor([0])],
      {Mx.NN.QuantizedEmbedding, :from_embedding, 2} => [w],
      {Mx.NN.QuantizedEmbedding, :as_linear, 3} => [%{}, Mx.ones({1, 64})],
      {Mx.NN, :quantize, 3} => [[w], [{Mx.NN.Linear, input_dims: 64, output_dims: 2}]]
    }
  end

  # Mx.NN.Llama (issue 13), on the committed tiny checkpoint.
  defp llama_examples do
    dir = Path.expand("fixtures/llama_tiny/f32", __DIR__)

    %{
      {Mx.NN.Llama, :load, 2} => [dir],
      {Mx.NN.Llama, :generate, 3} => [Mx.NN.Llama.load(dir), [1]]
    }
  end

  defp quant_examples do
    w = Mx.ones({2, 32})
    {w_q, scales, biases} = Mx.quantize(w, group_size: 32, bits: 4)

    Map.new(
      for m <- [Mx, Mx.Quantize],
          example <- [
            {{m, :quantize, 2}, [w]},
            {{m, :dequantize, 4}, [w_q, scales, biases]},
            {{m, :quantized_matmul, 5}, [Mx.ones({1, 32}), w_q, scales, biases]}
          ],
          do: example
    )
  end

  # ---- the walk ---------------------------------------------------------------------------

  test "discovery finds the option-taking functions of Mx and Gen" do
    found = option_functions()
    # A sample of each layer, so a broken discovery (finding nothing) cannot pass the walk.
    for f <-
          [{Mx, :sum, 2}, {Mx.Random, :normal, 4}, {Mx.Linalg, :qr, 2}, {Gen, :generate, 4}] ++
            [{Gen.Inference, :run, 3}, {Gen.Inference.NUTS, :sample, 3}, {Gen.Optim, :fit, 3}],
        do: assert(f in found, "#{inspect(f)} was not discovered")

    assert length(found) > 100
  end

  test "every discovered function has an example call, and every example is a discovered function" do
    found = MapSet.new(option_functions())
    listed = MapSet.new(Map.keys(examples()))
    missing = MapSet.difference(found, listed) |> Enum.sort()
    stale = MapSet.difference(listed, found) |> Enum.sort()
    assert missing == [], "add an example call to test/options_test.exs for #{inspect(missing)}"
    assert stale == [], "these examples name no option-taking public function: #{inspect(stale)}"
  end

  test "every public function that takes options rejects an unknown one, naming it" do
    ex = examples()

    failures =
      for {m, f, arity} = mfa <- Enum.sort(option_functions()),
          Map.has_key?(ex, mfa),
          reduce: [] do
        acc ->
          args = Map.fetch!(ex, mfa)

          assert length(args) == arity - 1,
                 "example for #{inspect(mfa)} has #{length(args)} arguments"

          case call(m, f, args ++ [[{@bogus, 1}]]) do
            {:raised, %ArgumentError{message: msg}} ->
              if msg =~ "unknown option #{@bogus}:" and msg =~ "the valid options are" and
                   names?(msg, m, f),
                 do: acc,
                 else: [{mfa, msg} | acc]

            other ->
              [{mfa, other} | acc]
          end
      end

    assert failures == [],
           "functions that do not reject #{@bogus}: by name:\n" <>
             Enum.map_join(Enum.reverse(failures), "\n", &inspect/1)
  end

  defp call(m, f, args) do
    {:returned, apply(m, f, args)}
  rescue
    e -> {:raised, e}
  end

  # The message names the function called, or the one its doc says it runs (Gen.Inference.vi -> Gen.Inference.VI.vi).
  defp names?(msg, m, f) do
    where = msg |> String.split(": ", parts: 2) |> hd() |> String.replace(~r{/\d+$}, "")
    {:docs_v1, _, _, _, _, _, docs} = Code.fetch_docs(m)

    doc =
      Enum.find_value(docs, "", fn
        {{:function, ^f, _}, _, _, %{"en" => d}, _} -> d
        _ -> nil
      end)

    where == "#{inspect(m)}.#{f}" or String.contains?(doc, where <> "/")
  end

  # ---- the message --------------------------------------------------------------------------

  test "the issue's cases: NUTS.sample's num_* and chains:, run's burnin:" do
    m =
      gen(fn ->
        mu = trace(:mu, Gen.Dist.normal(0.0, 1.0))
        trace(:y, Gen.Dist.normal(mu, 1.0))
      end)

    {t, _} = Gen.generate(m, [], %{y: 0.5}, key: Mx.Random.key(0))

    e =
      assert_raise ArgumentError, fn ->
        Gen.Inference.NUTS.sample(t, Gen.select(:mu), num_warmup: 10, num_samples: 10)
      end

    assert e.message =~
             "Gen.Inference.NUTS.sample: unknown option num_warmup: (did you mean warmup:?)"

    e =
      assert_raise ArgumentError, fn ->
        Gen.Inference.NUTS.sample(t, Gen.select(:mu), warmup: 10, num_chains: 4)
      end

    # chains: is an option since issue 11 (one process per chain)
    assert e.message =~
             "Gen.Inference.NUTS.sample: unknown option num_chains: (did you mean chains:?)"

    k = Gen.Inference.Kernel.mh(Gen.select(:mu))
    e = assert_raise ArgumentError, fn -> Gen.Inference.run(k, t, samples: 5, burnin: 100) end
    assert e.message =~ "Gen.Inference.run: unknown option burnin: (did you mean burn:?)"

    e = assert_raise ArgumentError, fn -> Mx.sum(Mx.tensor([1, 2]), axis: 0) end

    assert e.message ==
             "Mx.sum: unknown option axis: (did you mean axes:?); the valid options are axes:, keep_axes:"
  end

  test "options forwarded to an inner function are checked against both lists" do
    m =
      gen(fn t ->
        mu = trace(:mu, Gen.Dist.normal(0.0, 1.0))
        for i <- 0..t, do: trace({:y, i}, Gen.Dist.normal(mu, 1.0))
      end)

    k = gen(fn _old, t, _obs -> trace({:y, t}, Gen.Dist.normal(0.0, 1.0)) end)
    obs = [%{}, %{}]
    # smcp3 takes its own options and those of the particle-filter loop it runs on.
    {traces, _, _} =
      Gen.Inference.smcp3(m, &[&1], obs, 2, forward: k, ess_threshold: 0.3, key: Mx.Random.key(0))

    assert length(traces) == 2

    assert_raise ArgumentError,
                 ~r/smcp3: unknown option ess_treshold: \(did you mean ess_threshold:\?\)/,
                 fn ->
                   Gen.Inference.smcp3(m, &[&1], obs, 2, forward: k, ess_treshold: 0.3)
                 end

    # A kernel constructor checks the options it will pass on at every call, when it is built.
    assert is_function(Gen.Inference.Kernel.gibbs(:z, values: [0, 1]), 2)

    assert_raise ArgumentError,
                 ~r/Kernel.gibbs: unknown option value: \(did you mean values:\?\)/,
                 fn ->
                   Gen.Inference.Kernel.gibbs(:z, value: [0, 1])
                 end
  end

  test "options must be a keyword list" do
    assert_raise ArgumentError, "Mx.sum: options must be a keyword list, got [1]", fn ->
      Mx.sum(Mx.tensor([1]), [1])
    end

    assert_raise ArgumentError, ~r/Gen.simulate: options must be a keyword list/, fn ->
      Gen.simulate(Gen.Dist.normal(0.0, 1.0), [], [:key])
    end
  end

  test "a suggestion is made only for a close name" do
    assert_raise ArgumentError,
                 "f: unknown option zzz:; the valid options are key:, steps:",
                 fn ->
                   Mx.Opts.validate!([zzz: 1], [:key, :steps], "f")
                 end

    assert_raise ArgumentError, "f: unknown option x:; it takes no options", fn ->
      Mx.Opts.validate!([x: 1], [], "f")
    end
  end
end
