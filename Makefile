# Pulse developer commands. On a fresh Debian 12 as root, `make run` and `make test` install
# what they need (scripts/deps.sh) and start private Postgres and Redis servers
# (scripts/services.sh); nothing else has to be set up by hand.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

NPROC := $(shell nproc 2>/dev/null || echo 2)
FORMAT_DIRS := lib server tests

.PHONY: build build-asan run test bench memcheck clean services-stop format

# build/pulsed, optimised with debug info, no tests.
build:
	bash scripts/deps.sh build
	cmake -S . -B build --log-level=WARNING -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPULSE_TESTS=OFF
	cmake --build build -j$(NPROC)

# build-asan/: AddressSanitizer + UBSan, Debug, with the tests (what `make test` runs).
build-asan:
	bash scripts/deps.sh build
	cmake -S . -B build-asan --log-level=WARNING -DCMAKE_BUILD_TYPE=Debug -DPULSE_SANITIZE=ON -DPULSE_TESTS=ON
	cmake --build build-asan -j$(NPROC)

# Serves on http://127.0.0.1:8080 with the dev Postgres and Redis until Ctrl-C.
run:
	+bash scripts/run.sh

# Every test stage against the test Postgres and Redis; non-zero if anything failed.
test:
	+bash scripts/test.sh

# libFuzzer harnesses of tests/fuzz (clang, build-fuzz/), FUZZ_SECONDS each (default 60).
fuzz:
	bash scripts/deps.sh build test
	bash scripts/fuzz.sh

# Benchmarks of tests/bench on a release build (figures for the README):
# make bench [BENCH=http|accounts|records|replicas|live|resume]
bench:
	bash scripts/bench.sh $(BENCH)

# Unit and integration tests under valgrind on a plain build (not part of make test).
memcheck:
	bash scripts/memcheck.sh

clean:
	rm -rf build build-*

services-stop:
	bash scripts/services.sh dev stop
	bash scripts/services.sh test stop

format:
	bash scripts/deps.sh format
	find $(FORMAT_DIRS) -name node_modules -prune -o -type f \( -name '*.c' -o -name '*.h' \) -print0 \
		| xargs -0 -r clang-format -i
