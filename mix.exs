defmodule Mix.Tasks.Compile.MxNif do
  @moduledoc "Builds the engine NIF (priv/mx_nif.so) with make; no hex packages needed."
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    case System.cmd("make", ["--no-print-directory", "nif"], stderr_to_stdout: true) do
      {out, 0} ->
        if out =~ "gcc", do: Mix.shell().info(out)
        {:ok, []}

      {out, status} ->
        Mix.shell().error(out)
        Mix.raise("make nif failed with status #{status}")
    end
  end
end

defmodule GenMX.MixProject do
  use Mix.Project

  def project do
    [
      app: :genmx,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:mx_nif] ++ Mix.compilers(),
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: deps(),
      description: "Probabilistic programming on a lazy array engine in C, for the BEAM",
      docs: [main: "Mx"]
    ]
  end

  def application, do: [extra_applications: [:logger, :crypto]]

  # Nx is optional: Mx and Gen never need it; Mx.Nx.Backend compiles when it is present.
  # Offline, it comes from ../shared/deps (a checkout beside the repo); elsewhere from hex.
  @shared_nx Path.expand("../shared/deps/nx", __DIR__)
  defp deps do
    if File.dir?(@shared_nx),
      do: [{:nx, path: @shared_nx, optional: true}],
      else: [{:nx, "~> 0.7.3", optional: true}]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
