defmodule Mx.PrivateJitCache do
  @moduledoc false
  # Generated-C objects go to a cache private to this test run, not the user's ~/.cache/genmx:
  # call from setup_all; the directory and the old XDG_CACHE_HOME are restored on exit.
  def setup(prefix) do
    dir = Path.join(System.tmp_dir!(), "#{prefix}-#{System.unique_integer([:positive])}")
    old = System.get_env("XDG_CACHE_HOME")
    System.put_env("XDG_CACHE_HOME", dir)

    ExUnit.Callbacks.on_exit(fn ->
      if old, do: System.put_env("XDG_CACHE_HOME", old), else: System.delete_env("XDG_CACHE_HOME")
      File.rm_rf!(dir)
    end)

    :ok
  end
end
