# One command on a fresh Debian machine (as root): `make lint test` sets everything up, lints and
# runs the tests (what CI runs); `make tour` sets everything up and mounts the default table with
# a short tour. `make test` alone is for iterating on tests.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Python.h (python3-dev) and libfuse3-dev + pkg-config + gcc: pyfuse3 ships no wheels and is
# compiled at install time. fuse3 gives fusermount3; procps/psmisc/lsof/sysstat/htop (run under
# tmux) are clients the tests drive.
DEB_PACKAGES := fuse3 libfuse3-dev pkg-config procps psmisc lsof sysstat htop tmux python3-venv \
                python3-dev gcc
PYTEST_ARGS ?=
BENCH_ARGS ?=
# Targets that run our code see the venv's console scripts (pidfs-fuse) on PATH.
RUN_ENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

.PHONY: setup system-deps lint test fuzz soak bench tour clean

setup: system-deps $(STAMP)

system-deps:
	@if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "setup: no apt-get here; make sure these are installed: $(DEB_PACKAGES)"; \
	    exit 0; \
	fi; \
	missing=""; \
	for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' \
	        || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	    echo "setup: installing Debian packages:$$missing"; \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VPY): | system-deps
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
	    "setup: need Python >= 3.11, found %s at %s" % (sys.version.split()[0], sys.executable))'
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

$(STAMP): pyproject.toml | system-deps $(VPY)
	$(VPY) -m pip install -e '.[test]'
	touch $@

# Both tools run and report even when the first finds something; the target fails if either does.
lint: setup
	@status=0; \
	$(VENV)/bin/ruff check . || status=1; \
	$(VENV)/bin/mypy || status=1; \
	exit $$status

# Hypothesis profiles (pidfs_fuse/tests/conftest.py): test runs "fast", fuzz runs "fuzz".
test: setup
	$(RUN_ENV) $(VPY) -m pytest -q $(PYTEST_ARGS)

fuzz: setup
	$(RUN_ENV) HYPOTHESIS_PROFILE=fuzz $(VPY) -m pytest -q -m fuzz pidfs_fuse/tests $(PYTEST_ARGS)

# The differential oracle (issue 14): the model against real processes in a fresh pid namespace
# (needs root). At least DIFFTEST_STEPS compared operations, no new sequence after
# DIFFTEST_SECONDS; prints the coverage report and writes it to difftest-coverage.txt.
DIFFTEST_STEPS ?= 2000
DIFFTEST_SECONDS ?= 600
DIFFTEST_ARGS ?=
.PHONY: difftest
difftest: setup
	$(RUN_ENV) $(VPY) -m pidfs_fuse.oracle --steps $(DIFFTEST_STEPS) --seconds $(DIFFTEST_SECONDS) \
	    --report difftest-coverage.txt $(DIFFTEST_ARGS)

# The soak (mountpoint_tests/soak.py): SOAK_SECONDS of readers, churn, killed blocked readers and
# snapshots on one mount (at most 600); it prints its figures. make test runs it for 20 s.
SOAK_SECONDS ?= 300
soak: setup
	$(RUN_ENV) $(VPY) -m mountpoint_tests.soak --seconds $(SOAK_SECONDS)

bench: setup
	$(RUN_ENV) $(VPY) -m bench $(BENCH_ARGS)

# Three whole runs, one after another, then whether their ratios agree within 20%
# (bench/compare.py; issue 13 point 5): bench-run1.json .. bench-run3.json stay for a look.
.PHONY: bench-runs
bench-runs: setup
	for i in 1 2 3; do $(RUN_ENV) $(VPY) -m bench --json $(BENCH_ARGS) > bench-run$$i.json; done
	$(RUN_ENV) $(VPY) -m bench.compare bench-run1.json bench-run2.json bench-run3.json

tour: setup
	$(RUN_ENV) bash examples/tour.sh

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis ./*.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
