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

# Issue 7's benchmark: private durable PostgreSQL + esmed-smsc + esmed, release binaries.
.PHONY: bench bench-quick
bench:
	$(CARGO) build --release --bins
	mkdir -p target
	./target/release/esmed-bench --json target/bench.json

bench-quick:
	$(CARGO) build --release --bins
	mkdir -p target
	./target/release/esmed-bench --quick --json target/bench-quick.json
