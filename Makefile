# GenMX build. `make demo` and `make test` do all setup on a fresh Debian/Ubuntu
# machine: install missing system packages, build the NIF, run.
SHELL := /bin/bash
ERL_INCLUDE = $(shell erl -noshell -eval 'io:format("~s/erts-~s/include", [code:root_dir(), erlang:system_info(version)]), halt().' 2>/dev/null)
CC ?= gcc
OPT ?= -O3 -march=x86-64-v2 -fno-math-errno
CFLAGS = $(OPT) -std=gnu11 -Wall -Wextra -fPIC -fvisibility=hidden -pthread -Ic_src
LDLIBS := -lopenblas -llapacke -lm -pthread

# One build directory per flavour (release, asan), so objects never mix.
BUILD ?= _build/release
ENGINE_SRC := $(wildcard c_src/*.c c_src/prim/*.c)
ENGINE_OBJ := $(patsubst c_src/%.c,$(BUILD)/obj/%.o,$(ENGINE_SRC))
ENGINE_LIB := $(BUILD)/libmx.a
NIF_SRC := $(wildcard c_src/nif/*.c)
HEADERS := $(wildcard c_src/*.h c_src/*.def c_src/prim/*.h)
C_TESTS := $(patsubst c_src/test/%.c,$(BUILD)/c_test/%,$(wildcard c_src/test/test_*.c))

NIF := priv/mx_nif.so
ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

APT_PACKAGES := erlang-dev erlang-eunit erlang-tools elixir libopenblas-dev liblapacke-dev
# Only `make reference` needs these (the tests read the committed data).
REFERENCE_PACKAGES := python3-numpy python3-scipy python3-mpmath python3-torch
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PACKAGES ?= $(APT_PACKAGES)

.PHONY: all deps nif test test-c test-elixir demo asan bench clean reference

all: nif

# Installs only what is missing, so repeated runs are quick.
deps:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

nif: $(NIF)

$(BUILD)/obj/%.o: c_src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(ENGINE_LIB): $(ENGINE_OBJ)
	ar rcs $@ $^

# The engine is compiled once into a static library shared by the NIF, the C tests and bench/.
$(NIF): $(ENGINE_LIB) $(NIF_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(ERL_INCLUDE) -shared -o $@ $(NIF_SRC) $(ENGINE_LIB) $(LDLIBS)

$(BUILD)/c_test/%: c_src/test/%.c $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(ENGINE_LIB) $(LDLIBS)

# Plain C tests of the engine (no BEAM involved).
test-c: deps $(C_TESTS)
	@set -e; for t in $(C_TESTS); do echo "== $$t"; $$t; done

test-elixir: deps nif elixir-deps
	mix test --include slow

test: deps test-c test-elixir

demo: deps nif elixir-deps
	mix run examples/demo.exs
	mix run examples/inference.exs
	mix run examples/llama.exs

# The engine and NIF under AddressSanitizer + UBSan: the C tests, then the Elixir suite.
asan: deps
	$(MAKE) test-c BUILD=_build/asan OPT="$(ASAN_FLAGS)"
	$(MAKE) _build/asan/mx_nif.so NIF=_build/asan/mx_nif.so BUILD=_build/asan OPT="$(ASAN_FLAGS)"
	MX_NIF_PATH=$(abspath _build/asan/mx_nif) \
	  LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  mix test --exclude slow --exclude timing

bench: deps nif $(ENGINE_LIB)
	$(MAKE) -C bench

# Regenerates the reference data in test/reference/ from Debian's numpy/scipy.
reference:
	$(MAKE) deps PACKAGES="$(REFERENCE_PACKAGES)"
	@set -e; for g in test/reference/generate*.py; do echo "$$g"; /usr/bin/python3 $$g; done
	/usr/bin/python3 test/reference/generate_special.py

clean:
	rm -rf _build priv/mx_nif.so

# Nx (an optional dependency) is a path dependency on ../shared/deps when that folder is beside
# the repo (offline); otherwise mix.exs names the hex package, fetched here.
.PHONY: elixir-deps
elixir-deps:
	@if [ ! -d ../shared/deps/nx ]; then mix local.hex --force --if-missing && mix deps.get; fi

# jit.c embeds prim/elementwise.h as a string: generated C starts with the kernels' own expressions.
$(BUILD)/gen/elementwise_h.inc: c_src/prim/elementwise.h
	@mkdir -p $(dir $@)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@
$(BUILD)/obj/jit.o: $(BUILD)/gen/elementwise_h.inc
$(BUILD)/obj/jit.o: CFLAGS += -I$(BUILD)/gen -DMX_JIT_CC='"$(CC)"'
