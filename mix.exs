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
      deps: [],
      description: "Probabilistic programming on a lazy array engine in C, for the BEAM",
      docs: [main: "Mx"]
    ]
  end

  def application, do: [extra_applications: [:logger]]

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
