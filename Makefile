# esmed — build, test, try, install and package. `make test` is what CI (.ci/run) runs.
#
#   make demo                                     esmed end to end on this machine
#   make install [PREFIX=/usr/local] [DESTDIR=]   binaries, config, init script, man pages, SQL
#                                                 (from $CARGO_TARGET_DIR/release when set)
#   make uninstall                                removes them again (never config or logs)
#   make deb [BUILDDIR=build]                     $(BUILDDIR)/esmed_<version>_<arch>.deb
#   make bench / bench-quick / bench-kannel       the benchmark (and esmed beside Kannel)
#   make soak [ROWS=1000000]                      the soak test (not part of make test)
#   make fuzz [FUZZ_SECONDS=300]                  libFuzzer on the frame reader + decoder

CARGO ?= cargo
INSTALL ?= install
STRIP ?= strip
PREFIX ?= /usr/local
DESTDIR ?=
BUILDDIR ?= build
# Where cargo builds, and so where install and deb take the binaries from: CARGO_TARGET_DIR
# (or CARGO_BUILD_TARGET_DIR) when set, as packagers and CI do, else target/. A target-dir
# set in a .cargo/config.toml is not seen here: set CARGO_TARGET_DIR to it as well.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CARGO_BUILD_TARGET_DIR),target)
RELEASE = $(TARGET_DIR)/release

SBINDIR = $(PREFIX)/sbin
BINDIR = $(PREFIX)/bin
SQLDIR = $(PREFIX)/share/esmed/sql
MANDIR = $(PREFIX)/share/man
UNITDIR = $(PREFIX)/lib/systemd/system
# Configuration and init files live under /etc whatever the PREFIX (Debian's layout).
CONFDIR = /etc/esmed
CONF = $(CONFDIR)/esmed.conf
DEFAULTS = /etc/default/esmed
INITSCRIPT = /etc/init.d/esmed
LOGROTATE = /etc/logrotate.d/esmed
CRON_PURGE = /etc/cron.d/esmed-purge
LOGDIR = /var/log/esmed
DAEMON_USER = esmed

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
SQL_FILES := $(wildcard sql/*.sql)
# The paths in the init script, unit and man pages are written for PREFIX=/usr.
# etc/esmed.conf documents the defaults (a unit test holds it to that); the installed copy
# also logs to /var/log/esmed/esmed.log, which logrotate rotates: under the init script stderr
# goes nowhere.
CONFIG_FOR_INSTALL = sed -e 's|^\#file = /var/log/esmed/esmed.log$$|file = /var/log/esmed/esmed.log|'
FIX_PATHS = sed -e 's|/usr/sbin/esmed|$(SBINDIR)/esmed|g' -e 's|/usr/share/esmed|$(PREFIX)/share/esmed|g'

.PHONY: all build test demo postgresql-tools clean install install-files install-config \
	install-system uninstall deb

all: build

# The two programs install and deb ship: esmed and the test SMSC (a crate of its own).
build:
	$(CARGO) build --release -p esmed -p esmed-smsc

# The whole workspace: the daemon and the crates under crates/, their doc examples too
# (--all-targets leaves those out).
test: postgresql-tools
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --all-targets
	# the queue, receipt, MO, feed and purge suites again, on the partitioned layout
	ESMED_TEST_LAYOUT=partitioned $(CARGO) test --test send --test receipts --test receive --test feed --test purge
	$(CARGO) test --workspace --doc

# Builds esmed and the demo, then runs it: a private PostgreSQL cluster and the test SMSC on
# loopback, esmed, a few messages, and what became of them. Installs PostgreSQL when missing.
demo: postgresql-tools
	$(CARGO) build --release --bins --example demo
	$(RELEASE)/examples/demo

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
	rm -rf $(BUILDDIR)

# The user comes first so that the config can belong to its group.
install: build
	@if [ -z "$(DESTDIR)" ]; then $(MAKE) --no-print-directory install-system; fi
	@$(MAKE) --no-print-directory install-files install-config

install-files:
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SQLDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)/etc/init.d $(DESTDIR)/etc/logrotate.d $(DESTDIR)/etc/default \
		$(DESTDIR)/etc/cron.d
	$(INSTALL) -m 0755 $(RELEASE)/esmed $(DESTDIR)$(SBINDIR)/esmed
	$(INSTALL) -m 0755 $(RELEASE)/esmed-smsc $(DESTDIR)$(BINDIR)/esmed-smsc
	$(INSTALL) -m 0644 $(SQL_FILES) $(DESTDIR)$(SQLDIR)/
	$(FIX_PATHS) man/esmed.8 > $(DESTDIR)$(MANDIR)/man8/esmed.8
	$(FIX_PATHS) man/esmed.conf.5 > $(DESTDIR)$(MANDIR)/man5/esmed.conf.5
	chmod 0644 $(DESTDIR)$(MANDIR)/man8/esmed.8 $(DESTDIR)$(MANDIR)/man5/esmed.conf.5
	$(FIX_PATHS) init/esmed > $(DESTDIR)$(INITSCRIPT)
	chmod 0755 $(DESTDIR)$(INITSCRIPT)
	$(FIX_PATHS) init/esmed.service > $(DESTDIR)$(UNITDIR)/esmed.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/esmed.service
	@# The purge's unit, timer and cron line are installed off: nothing enables them.
	$(FIX_PATHS) init/esmed-purge.service > $(DESTDIR)$(UNITDIR)/esmed-purge.service
	$(INSTALL) -m 0644 init/esmed-purge.timer $(DESTDIR)$(UNITDIR)/esmed-purge.timer
	chmod 0644 $(DESTDIR)$(UNITDIR)/esmed-purge.service
	$(INSTALL) -m 0644 etc/logrotate.d/esmed $(DESTDIR)$(LOGROTATE)

# Files the operator edits are installed once and never overwritten.
install-config:
	$(INSTALL) -d -m 0755 $(DESTDIR)$(CONFDIR) $(DESTDIR)$(dir $(DEFAULTS))
	@if [ -e $(DESTDIR)$(CONF) ]; then \
		echo "keeping the existing $(DESTDIR)$(CONF)"; \
	else \
		echo "etc/esmed.conf -> $(DESTDIR)$(CONF) (mode 0640, logging to $(LOGDIR))"; \
		(umask 077 && $(CONFIG_FOR_INSTALL) etc/esmed.conf > $(DESTDIR)$(CONF).new) || exit 1; \
		chmod 0640 $(DESTDIR)$(CONF).new && mv $(DESTDIR)$(CONF).new $(DESTDIR)$(CONF) || exit 1; \
		if getent group $(DAEMON_USER) >/dev/null 2>&1; then \
			chgrp $(DAEMON_USER) $(DESTDIR)$(CONF) || [ -n "$(DESTDIR)" ] || exit 1; \
		fi; \
	fi
	@if [ -e $(DESTDIR)$(DEFAULTS) ]; then \
		echo "keeping the existing $(DESTDIR)$(DEFAULTS)"; \
	else \
		echo "$(INSTALL) -m 0644 etc/default/esmed $(DESTDIR)$(DEFAULTS)"; \
		$(INSTALL) -m 0644 etc/default/esmed $(DESTDIR)$(DEFAULTS) || exit 1; \
	fi
	@if [ -e $(DESTDIR)$(CRON_PURGE) ]; then \
		echo "keeping the existing $(DESTDIR)$(CRON_PURGE)"; \
	else \
		echo "$(FIX_PATHS) etc/cron.d/esmed-purge > $(DESTDIR)$(CRON_PURGE)"; \
		$(INSTALL) -d $(DESTDIR)$(dir $(CRON_PURGE)) || exit 1; \
		$(FIX_PATHS) etc/cron.d/esmed-purge > $(DESTDIR)$(CRON_PURGE) || exit 1; \
		chmod 0644 $(DESTDIR)$(CRON_PURGE) || exit 1; \
	fi

# Live installs only: the system account esmed runs as, and its log directory.
install-system:
	@if ! getent passwd $(DAEMON_USER) >/dev/null 2>&1; then \
		if command -v adduser >/dev/null 2>&1; then \
			echo "adduser --system --group $(DAEMON_USER)"; \
			adduser --quiet --system --group --home /nonexistent --no-create-home $(DAEMON_USER); \
		else \
			echo "useradd --system --user-group $(DAEMON_USER)"; \
			useradd --system --user-group --home-dir /nonexistent --no-create-home \
				--shell /usr/sbin/nologin $(DAEMON_USER); \
		fi || exit 1; \
	fi
	$(INSTALL) -d -o $(DAEMON_USER) -g $(DAEMON_USER) -m 0750 $(LOGDIR)

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/esmed $(DESTDIR)$(BINDIR)/esmed-smsc \
		$(addprefix $(DESTDIR)$(SQLDIR)/,$(notdir $(SQL_FILES))) \
		$(DESTDIR)$(MANDIR)/man8/esmed.8 $(DESTDIR)$(MANDIR)/man5/esmed.conf.5 \
		$(DESTDIR)$(INITSCRIPT) $(DESTDIR)$(UNITDIR)/esmed.service $(DESTDIR)$(LOGROTATE) \
		$(DESTDIR)$(UNITDIR)/esmed-purge.service $(DESTDIR)$(UNITDIR)/esmed-purge.timer
	-rmdir $(DESTDIR)$(SQLDIR) $(DESTDIR)$(PREFIX)/share/esmed 2>/dev/null
	@echo "kept $(DESTDIR)$(CONF), $(DESTDIR)$(DEFAULTS), $(DESTDIR)$(CRON_PURGE), $(LOGDIR) and the $(DAEMON_USER) user"

DEBROOT = $(abspath $(BUILDDIR))/deb

# A binary package from an install tree; the maintainer scripts are in pkg/debian/.
deb: build
	rm -rf $(DEBROOT)
	$(MAKE) --no-print-directory install-files install-config PREFIX=/usr DESTDIR=$(DEBROOT)
	@# The release profile keeps debug info for backtraces; a package ships without it.
	if command -v $(STRIP) >/dev/null 2>&1; then \
		$(STRIP) --strip-debug $(DEBROOT)/usr/sbin/esmed $(DEBROOT)/usr/bin/esmed-smsc; fi
	gzip -9n $(DEBROOT)/usr/share/man/man8/esmed.8 $(DEBROOT)/usr/share/man/man5/esmed.conf.5
	$(INSTALL) -d $(DEBROOT)/usr/share/doc/esmed $(DEBROOT)/DEBIAN
	$(INSTALL) -m 0644 pkg/debian/copyright $(DEBROOT)/usr/share/doc/esmed/copyright
	$(INSTALL) -m 0644 pkg/debian/conffiles $(DEBROOT)/DEBIAN/conffiles
	$(INSTALL) -m 0755 pkg/debian/postinst pkg/debian/prerm pkg/debian/postrm $(DEBROOT)/DEBIAN/
	sed -e 's/@VERSION@/$(VERSION)/' \
		-e "s/@ARCH@/$$(dpkg --print-architecture)/" \
		-e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(DEBROOT) | cut -f1)/" \
		pkg/debian/control.in > $(DEBROOT)/DEBIAN/control
	dpkg-deb --root-owner-group --build $(DEBROOT) \
		$(BUILDDIR)/esmed_$(VERSION)_$$(dpkg --print-architecture).deb

# The benchmark (esmed-bench): a private durable PostgreSQL, esmed-smsc and esmed as separate
# processes, release binaries; prints a table and writes JSON.
.PHONY: bench bench-quick
bench: postgresql-tools
	$(CARGO) build --release --workspace --bins
	mkdir -p $(TARGET_DIR)
	$(RELEASE)/esmed-bench --json $(TARGET_DIR)/bench.json

bench-quick: postgresql-tools
	$(CARGO) build --release --workspace --bins
	mkdir -p $(TARGET_DIR)
	$(RELEASE)/esmed-bench --quick --json $(TARGET_DIR)/bench-quick.json

# esmed and Kannel side by side (scenario 7, which `make bench` runs whenever Kannel is
# installed): installs Debian's kannel package when root, then runs that scenario alone.
.PHONY: bench-kannel
bench-kannel: postgresql-tools
	@if [ ! -x /usr/sbin/bearerbox ] || [ ! -x /usr/sbin/smsbox ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "Kannel not found: installing the kannel package"; \
	        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y kannel || exit 1; \
	    else \
	        echo "Kannel (bearerbox) not found: install it with" >&2; \
	        echo "  sudo apt-get install kannel" >&2; \
	        exit 1; \
	    fi; \
	fi
	$(CARGO) build --release --workspace --bins
	mkdir -p $(TARGET_DIR)
	$(RELEASE)/esmed-bench --only kannel --json $(TARGET_DIR)/bench-kannel.json

# Soak (docs/reliability.md, case 11): not part of `make test`. `make soak ROWS=100000` for a quick run.
ROWS ?= 1000000
.PHONY: soak
soak: postgresql-tools
	$(CARGO) build --release --bins --examples
	$(RELEASE)/examples/soak --rows $(ROWS)

# Fuzzing the frame reader and decoder with libFuzzer for FUZZ_SECONDS (not part of make
# test). cargo-fuzz wants nightly features; RUSTC_BOOTSTRAP=1 lets the stable toolchain build
# them, since this machine has no other toolchain.
FUZZ_SECONDS ?= 300
.PHONY: fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run decode -- -max_total_time=$(FUZZ_SECONDS)
