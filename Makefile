# esmed — build and test. `make test` is what CI (.ci/run) runs.
# `make soak` runs the long soak test (not in CI). Later: install, demo, bench.

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

# Soak (issue 5, case 11): not part of `make test`. `make soak ROWS=100000` for a quick run.
ROWS ?= 1000000
.PHONY: soak
soak:
	$(CARGO) build --release --bins --examples
	./target/release/examples/soak --rows $(ROWS)
