# Slow tests (long soak loops) run with `mix test --include slow`; `make test` runs them.
# Statistical tests run thousands of GFI calls; on a loaded 2-core machine one can pass 60 s,
# so the per-test timeout only guards against hangs.
ExUnit.start(exclude: [:slow], timeout: 600_000)
# The engine's default buffer-cache limit, before any test changes it (scheduling_test.exs).
:persistent_term.put(:mx_default_cache_limit, Mx.Memory.report().cache_limit)
# Mx.compile's generated-C tier starts a C compiler per new tape: only jit_test.exs asks for it
# (jit: true); other tests replay on the interpreter, whose results they compare bit for bit.
Application.put_env(:genmx, :jit, false)
