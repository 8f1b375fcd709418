# Slow tests (long soak loops) run with `mix test --include slow`; `make test` runs them.
ExUnit.start(exclude: [:slow])
