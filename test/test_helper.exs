# Slow tests (long soak loops) run with `mix test --include slow`; `make test` runs them.
# Statistical tests run thousands of GFI calls; on a loaded 2-core machine one can pass 60 s,
# so the per-test timeout only guards against hangs.
ExUnit.start(exclude: [:slow], timeout: 600_000)
