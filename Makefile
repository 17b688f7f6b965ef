# esmed — build and test. `make test` is what CI (.ci/run) runs.
# `make demo` tries esmed end to end on this machine (examples/demo.rs). Later: install, bench.

CARGO ?= cargo

.PHONY: all build test demo postgresql-tools clean

all: build

build:
	$(CARGO) build --release

test: postgresql-tools
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets

# Builds esmed and the demo, then runs it: a private PostgreSQL cluster and the test SMSC on
# loopback, esmed, a few messages, and what became of them. Installs PostgreSQL when missing.
demo: postgresql-tools
	$(CARGO) build --release --bins --example demo
	./target/release/examples/demo

# The PostgreSQL server tools (initdb, pg_ctl): installed with apt-get when we are root,
# otherwise the user is told what to install.
postgresql-tools:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "PostgreSQL server tools not found: installing the postgresql package"; \
	        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql || exit 1; \
	    else \
	        echo "PostgreSQL server tools (initdb) not found: install them with" >&2; \
	        echo "  sudo apt-get install postgresql" >&2; \
	        echo "then run make demo again." >&2; \
	        exit 1; \
	    fi; \
	fi

clean:
	$(CARGO) clean
