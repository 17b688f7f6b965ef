# esmed — build and test. `make test` is what CI (.ci/run) runs.
# Later: install, demo, bench.

CARGO ?= cargo

.PHONY: all build test clean

all: build

build:
	$(CARGO) build --release

test:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets

clean:
	$(CARGO) clean
