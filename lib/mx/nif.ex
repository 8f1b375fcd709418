defmodule Mx.NIF do
  @moduledoc false
  # The engine's NIFs (c_src/nif/mx_nif.c). Every function validates its
  # arguments in C; these Elixir bodies only run if the library failed to load.
  @on_load :load

  def load do
    path = System.get_env("MX_NIF_PATH") || Path.join(:code.priv_dir(:genmx), "mx_nif")
    :erlang.load_nif(String.to_charlist(path), 0)
  end

  defp nif_not_loaded, do: :erlang.nif_error(:mx_nif_not_loaded)

  def from_binary(_bin, _type, _shape), do: nif_not_loaded()
  def full(_type, _shape, _value), do: nif_not_loaded()
  def iota(_type, _shape, _axis), do: nif_not_loaded()
  def arange(_type, _start, _step, _n), do: nif_not_loaded()
  def linspace(_type, _start, _stop, _n, _endpoint), do: nif_not_loaded()
  def eye(_type, _n, _m), do: nif_not_loaded()
  def unary(_op, _a), do: nif_not_loaded()
  def binary(_op, _a, _b), do: nif_not_loaded()
  def as_type(_a, _type), do: nif_not_loaded()
  def bitcast(_a, _type), do: nif_not_loaded()
  def select(_p, _a, _b), do: nif_not_loaded()
  def clip(_a, _lo, _hi), do: nif_not_loaded()
  def reduce(_op, _a, _axes, _keep), do: nif_not_loaded()
  def scan(_op, _a, _axis, _reverse), do: nif_not_loaded()
  def sort(_op, _a, _axis, _desc), do: nif_not_loaded()
  def matmul(_a, _b), do: nif_not_loaded()
  def reshape(_a, _shape), do: nif_not_loaded()
  def broadcast(_a, _shape), do: nif_not_loaded()
  def transpose(_a, _axes), do: nif_not_loaded()
  def squeeze(_a, _axes), do: nif_not_loaded()
  def new_axis(_a, _axis), do: nif_not_loaded()
  def reverse(_a, _axes), do: nif_not_loaded()
  def concatenate(_list, _axis), do: nif_not_loaded()
  def stack(_list, _axis), do: nif_not_loaded()
  def slice(_a, _start, _stop, _strides), do: nif_not_loaded()
  def pad(_a, _value, _lo, _hi, _interior), do: nif_not_loaded()
  def take(_a, _idx, _axis), do: nif_not_loaded()
  def take_along_axis(_a, _idx, _axis), do: nif_not_loaded()
  def gather(_a, _idx), do: nif_not_loaded()
  def indexed(_put?, _a, _idx, _updates), do: nif_not_loaded()
  def trace_input(_a), do: nif_not_loaded()
  def stop_gradient(_a), do: nif_not_loaded()
  def vjp(_outs, _cots, _wrt), do: nif_not_loaded()
  def vmap(_outs, _holders, _inputs, _batch), do: nif_not_loaded()
  # random
  def random(_op, _key, _params, _type, _shape, _flags), do: nif_not_loaded()
  # linalg
  def linalg(_fun, _arrays, _params), do: nif_not_loaded()
  # fft
  def fft(_op, _a, _axis, _n, _norm), do: nif_not_loaded()
  # special
  def betainc(_a, _b, _x), do: nif_not_loaded()
  def eval(_refs), do: nif_not_loaded()
  def to_binary(_a), do: nif_not_loaded()
  def eval_dirty(_refs), do: nif_not_loaded()
  def noop_dirty, do: nif_not_loaded()
  def evaluated?(_a), do: nif_not_loaded()
  def state(_a), do: nif_not_loaded()
  def dispose(_a), do: nif_not_loaded()
  def memory_report, do: nif_not_loaded()
  def set_cache_limit(_bytes), do: nif_not_loaded()
  def set_memory_limit(_bytes), do: nif_not_loaded()
  def reset_peak, do: nif_not_loaded()
  def clear_cache, do: nif_not_loaded()
  def set_dirty_threshold(_elements), do: nif_not_loaded()
  def op_names, do: nif_not_loaded()
  def op_grads, do: nif_not_loaded()
  def noop, do: nif_not_loaded()
  def probe(_what), do: nif_not_loaded()
  # compile
  def placeholder(_type, _shape), do: nif_not_loaded()
  def compile_cache(_size), do: nif_not_loaded()
  def compile_capture(_cache, _key, _holders, _outs, _template), do: nif_not_loaded()
  def compile_fallback(_cache, _key), do: nif_not_loaded()
  def compile_call(_cache, _key, _inputs), do: nif_not_loaded()
  def compile_run(_tape, _inputs), do: nif_not_loaded()
  def compile_stats(_cache), do: nif_not_loaded()
  def tape_info(_tape), do: nif_not_loaded()
  # samplers (c_src/sampler.c; Gen.Inference.Sampler drives them)
  def sampler_start(_config, _tape_or_nil, _pid), do: nif_not_loaded()
  def sampler_reply(_handle, _reply), do: nif_not_loaded()
  def sampler_cancel(_handle), do: nif_not_loaded()
  def sampler_result(_handle), do: nif_not_loaded()
  def sampler_run_inline(_config, _tape), do: nif_not_loaded()
  def tape_jit(_tape, _env), do: nif_not_loaded()
  def tape_jit_info(_tape), do: nif_not_loaded()
  def tape_jit_wait(_tape, _ms), do: nif_not_loaded()
  def compile_lookup(_cache, _key), do: nif_not_loaded()
  @doc false
  def tape_jit_source(_tape), do: nif_not_loaded()
  @doc false
  def tape_time_raw(_tape, _inputs, _reps), do: nif_not_loaded()
  # convolution and window reductions (c_src/ops_conv.c)
  def conv(
        _x,
        _w,
        _strides,
        _lo,
        _hi,
        _input_dilation,
        _kernel_dilation,
        _feature_groups,
        _batch_groups
      ),
      do: nif_not_loaded()

  def window(_op, _x, _window, _strides, _lo, _hi, _dilations), do: nif_not_loaded()
  def window_scatter(_op, _x, _source, _init, _window, _strides, _lo, _hi), do: nif_not_loaded()
  # io (Mx.IO)
  @doc false
  def from_file(_path, _offset, _type, _shape), do: nif_not_loaded()
  def compile_clear(_cache), do: nif_not_loaded()

  # quantization as MLX does it (c_src/ops_quant.c)
  def quantize(_w, _group_size, _bits), do: nif_not_loaded()
  def dequantize(_w_q, _scales, _biases, _group_size, _bits), do: nif_not_loaded()

  def quantized_matmul(_x, _w_q, _scales, _biases, _transpose, _group_size, _bits),
    do: nif_not_loaded()

  # fused scaled-dot-product attention (c_src/ops_sdpa.c)
  def scaled_dot_product_attention(_q, _k, _v, _mask, _scale), do: nif_not_loaded()
end
