defmodule Mx.IO.Reader do
  @moduledoc false
  # What the format readers share: an open file with its size, bounded reads that
  # name the file when it is short, errors that name the function and the file, and
  # tensors read by offset straight into Mx buffers (Mx.NIF.from_file).

  import Bitwise

  defstruct [:fd, :path, :size, :fun]

  @type t :: %__MODULE__{fd: term(), path: String.t(), size: non_neg_integer(), fun: String.t()}

  @spec open!(Path.t(), String.t()) :: t()
  def open!(path, fun) do
    path = IO.chardata_to_string(path)
    check_host!(fun)

    case :file.open(path, [:read, :raw, :binary]) do
      {:ok, fd} ->
        case :file.read_file_info(path) do
          {:ok, info} when elem(info, 2) == :regular ->
            %__MODULE__{fd: fd, path: path, size: elem(info, 1), fun: fun}

          _ ->
            :file.close(fd)
            raise Mx.Error, "#{fun}: #{path} is not a regular file"
        end

      {:error, reason} ->
        raise Mx.Error, "#{fun}: cannot open #{path}: #{:file.format_error(reason)}"
    end
  end

  @spec close(t()) :: :ok
  def close(%__MODULE__{fd: fd}), do: :file.close(fd)

  @doc false
  # Runs fun with the file open, closing it however fun ends.
  def with_file(path, fun_name, fun) do
    r = open!(path, fun_name)

    try do
      fun.(r)
    after
      close(r)
    end
  end

  # Files store little-endian bytes, the engine native-endian ones: on a big-endian
  # host every load would be silently wrong, so refuse.
  def check_host!(fun) do
    if :erlang.system_info(:endian) != :little,
      do:
        raise(Mx.Error, "#{fun}: this host is big-endian; Mx.IO reads and writes little-endian files on little-endian hosts only")
  end

  @spec fail!(t() | {String.t(), String.t()}, String.t()) :: no_return()
  def fail!(%__MODULE__{fun: fun, path: path}, msg), do: raise(Mx.Error, "#{fun}: #{path}: #{msg}")
  def fail!({fun, path}, msg), do: raise(Mx.Error, "#{fun}: #{path}: #{msg}")

  @doc false
  # Exactly n bytes at offset, or an error saying what was being read.
  @spec pread!(t(), non_neg_integer(), non_neg_integer(), String.t()) :: binary()
  def pread!(%__MODULE__{} = r, offset, n, what) do
    cond do
      n == 0 ->
        <<>>

      offset + n > r.size ->
        fail!(
          r,
          "#{what} needs bytes #{offset}..#{offset + n} but the file has #{r.size} bytes; it is truncated or the header lies"
        )

      true ->
        case :file.pread(r.fd, offset, n) do
          {:ok, bin} when byte_size(bin) == n -> bin
          {:ok, bin} -> fail!(r, "#{what}: read #{byte_size(bin)} of #{n} bytes at #{offset} (the file shrank?)")
          other -> fail!(r, "#{what}: reading #{n} bytes at #{offset} failed: #{inspect(other)}")
        end
    end
  end

  @doc false
  # Element count and byte count of shape, refusing what cannot be an Mx array.
  @spec check_shape!(t(), String.t(), [integer()], Mx.Type.t()) :: non_neg_integer()
  def check_shape!(r, name, shape, type) do
    unless is_list(shape) and Enum.all?(shape, &(is_integer(&1) and &1 >= 0)),
      do: fail!(r, "tensor #{inspect(name)}: the shape #{inspect(shape, limit: 10)} is not a list of non-negative integers")

    if length(shape) > 8, do: fail!(r, "tensor #{inspect(name)}: rank #{length(shape)} is over Mx's limit of 8")

    bytes = Enum.reduce(shape, Mx.Type.byte_size(type), &(&1 * &2))
    # Past 2^62 bytes no file or buffer can hold it (the C side counts in signed 64 bits).
    if bytes >= 1 <<< 62,
      do: fail!(r, "tensor #{inspect(name)}: the shape #{inspect(shape)} of #{type} needs #{bytes} bytes, an absurd size")

    bytes
  end

  @doc false
  # The array of type and shape stored at offset (checked to lie inside the file first).
  @spec tensor!(t(), String.t(), non_neg_integer(), Mx.Type.t(), [non_neg_integer()]) :: Mx.t()
  def tensor!(%__MODULE__{} = r, name, offset, type, shape) do
    bytes = check_shape!(r, name, shape, type)

    if offset + bytes > r.size,
      do: fail!(r, "tensor #{inspect(name)}: its #{bytes} bytes at #{offset} run past the end of the file (#{r.size} bytes)")

    try do
      Mx.NIF.from_file(r.path, offset, type, List.to_tuple(shape)) |> Mx.Array.wrap()
    rescue
      e in [Mx.Error, ArgumentError] -> fail!(r, "tensor #{inspect(name)}: #{Exception.message(e)}")
    end
  end

  @doc false
  # Writes iodata chunks to a temporary file next to path and renames it into place,
  # so a failed save never leaves a half-written file under the real name.
  @spec write_atomically!(Path.t(), String.t(), (term() -> :ok)) :: :ok
  def write_atomically!(path, fun_name, writer) do
    path = IO.chardata_to_string(path)
    check_host!(fun_name)
    tmp = "#{path}.tmp-#{System.unique_integer([:positive])}"

    case :file.open(tmp, [:write, :raw, :binary, :delayed_write]) do
      {:ok, fd} ->
        try do
          writer.(fn data ->
            case :file.write(fd, data) do
              :ok -> :ok
              {:error, reason} -> raise Mx.Error, "#{fun_name}: writing #{path} failed: #{:file.format_error(reason)}"
            end
          end)

          case :file.close(fd) do
            :ok -> :ok
            {:error, reason} -> raise Mx.Error, "#{fun_name}: writing #{path} failed: #{:file.format_error(reason)}"
          end

          case :file.rename(tmp, path) do
            :ok -> :ok
            {:error, reason} -> raise Mx.Error, "#{fun_name}: cannot move the file into #{path}: #{:file.format_error(reason)}"
          end
        after
          :file.close(fd)
          :file.delete(tmp)
        end

      {:error, reason} ->
        raise Mx.Error, "#{fun_name}: cannot write #{path}: #{:file.format_error(reason)}"
    end
  end
end
