defmodule Mx.IOFuzzTest do
  # Malformed files must raise Mx.Error and never crash the VM or raise anything else:
  # every truncation of small valid files, and byte-wise mutations from fixed seeds.
  use ExUnit.Case, async: true
  import Bitwise

  @fixtures Path.expand("../fixtures/io", __DIR__)
  @files ~w(f32.npy big_f64.npy fortran.npy v3.npy stored.npz deflated.npz all_dtypes.safetensors model.safetensors plain.gguf quant.gguf)
  @mutations 400

  setup do
    dir = Path.join(System.tmp_dir!(), "mx_io_fuzz_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, dir: dir}
  end

  # :ok when it loads (every array then read back), {:error, message} for an Mx.Error.
  defp try_load(path) do
    loaded = Mx.IO.load(path)
    loaded |> Mx.Tree.leaves() |> Enum.each(&Mx.to_binary/1)
    :ok
  rescue
    e in Mx.Error -> {:error, e.message}
  end

  for file <- @files do
    @file_name file

    @tag :slow
    test "#{file}: every truncation raises Mx.Error naming the file", %{dir: dir} do
      bin = File.read!(Path.join(@fixtures, @file_name))
      path = Path.join(dir, @file_name)

      for len <- 0..(byte_size(bin) - 1) do
        File.write!(path, binary_part(bin, 0, len))
        assert {:error, msg} = try_load(path), "#{@file_name} cut to #{len} bytes loaded"
        assert msg =~ path, "#{@file_name} cut to #{len}: #{msg}"
      end
    end

    test "#{file}: byte mutations load or raise Mx.Error", %{dir: dir} do
      bin = File.read!(Path.join(@fixtures, @file_name))
      path = Path.join(dir, @file_name)
      :rand.seed(:exsss, {13, 7, :erlang.phash2(@file_name)})

      outcomes =
        for _ <- 1..@mutations do
          mutated =
            Enum.reduce(1..Enum.random(1..4), bin, fn _, acc ->
              at = :rand.uniform(byte_size(acc)) - 1
              <<pre::binary-size(at), _old, post::binary>> = acc
              pre <> <<Enum.random([0, 0xFF, 0x7F, 0x80, 0x20, :rand.uniform(256) - 1])>> <> post
            end)

          File.write!(path, mutated)

          case try_load(path) do
            :ok ->
              :ok

            {:error, msg} ->
              assert msg =~ path
              :error
          end
        end

      # The mutations reach the headers: some files must be refused.
      assert :error in outcomes
    end
  end

  test "every length of a header-length field, over a tiny safetensors file", %{dir: dir} do
    path = Path.join(dir, "x.safetensors")
    :ok = Mx.IO.save_safetensors(path, %{"a" => Mx.tensor([1.0, 2.0])})
    <<_::little-64, rest::binary>> = File.read!(path)

    for n <- [0, 1, 2, byte_size(rest) - 9, byte_size(rest) - 1, byte_size(rest) + 1, 1 <<< 32, (1 <<< 63) - 1, (1 <<< 64) - 1] do
      File.write!(path, <<n::little-64>> <> rest)
      assert {:error, _} = try_load(path), "header length #{n}"
    end
  end
end
