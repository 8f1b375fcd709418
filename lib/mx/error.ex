defmodule Mx.Error do
  @moduledoc """
  Raised when the engine rejects an operation: incompatible shapes or dtypes,
  an axis out of range, an index out of bounds found at evaluation, a
  disposed array, or the memory limit. The message names the op, the shapes
  and dtypes involved, and what to do.
  """
  defexception [:message]
end
