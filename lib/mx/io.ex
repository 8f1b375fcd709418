defmodule Mx.IO do
  @moduledoc false
end
