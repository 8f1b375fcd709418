# GenMX build. `make demo` and `make test` do all setup on a fresh Debian/Ubuntu
# machine: install missing system packages, build the NIF, run.
SHELL := /bin/bash
ERL_INCLUDE := $(shell erl -noshell -eval 'io:format("~s/erts-~s/include", [code:root_dir(), erlang:system_info(version)]), halt().' 2>/dev/null)
CC ?= gcc
CFLAGS ?= -O3 -march=x86-64-v2 -fno-math-errno
CFLAGS += -std=gnu11 -Wall -Wextra -fPIC -fvisibility=hidden -pthread -Ic_src
LDLIBS := -lopenblas -llapacke -lm -pthread

ENGINE_SRC := $(wildcard c_src/*.c c_src/prim/*.c)
NIF_SRC := $(wildcard c_src/nif/*.c)
HEADERS := $(wildcard c_src/*.h c_src/*.def c_src/prim/*.h)
C_TESTS := $(patsubst c_src/test/%.c,_build/c_test/%,$(wildcard c_src/test/test_*.c))

NIF := priv/mx_nif.so
ASAN_NIF := _build/asan/mx_nif.so

APT_PACKAGES := erlang-dev erlang-eunit erlang-tools elixir libopenblas-dev liblapacke-dev python3-numpy python3-scipy
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps nif test test-c test-elixir demo asan bench clean reference

all: nif

# Installs only what is missing, so repeated runs are quick.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

nif: $(NIF)

$(NIF): $(ENGINE_SRC) $(NIF_SRC) $(HEADERS)
	@mkdir -p priv
	$(CC) $(CFLAGS) -I$(ERL_INCLUDE) -shared -o $@ $(ENGINE_SRC) $(NIF_SRC) $(LDLIBS)

_build/c_test/%: c_src/test/%.c $(ENGINE_SRC) $(HEADERS)
	@mkdir -p _build/c_test
	$(CC) $(CFLAGS) -o $@ $< $(ENGINE_SRC) $(LDLIBS)

# Plain C tests of the engine (no BEAM involved).
test-c: deps $(C_TESTS)
	@set -e; for t in $(C_TESTS); do echo "== $$t"; $$t; done

test-elixir: deps nif
	mix test

test: deps test-c test-elixir

demo: deps nif
	mix run examples/demo.exs

# The engine and NIF under AddressSanitizer + UBSan, then the whole suite.
asan: deps
	@mkdir -p _build/asan
	$(CC) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	  -std=gnu11 -Wall -Wextra -fPIC -pthread -Ic_src -I$(ERL_INCLUDE) -shared -o $(ASAN_NIF) $(ENGINE_SRC) $(NIF_SRC) $(LDLIBS)
	$(MAKE) test-c CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined"
	MX_NIF_PATH=$(abspath _build/asan/mx_nif) LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  mix test --exclude slow

bench: deps nif
	$(MAKE) -C bench

# Regenerates test/reference/*.exs from Debian's numpy/scipy (needs /usr/bin/python3).
reference:
	/usr/bin/python3 test/reference/generate.py

clean:
	rm -rf _build priv/mx_nif.so
