# falcoctl-py: set-up, run, test, bench. Run as root on Debian 12.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
SHARED ?= ../shared
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py | sha1sum | cut -c1-12)

.PHONY: install install-test run test bench conformance completions lint typecheck clean image

$(STAMP): pyproject.toml setup.py $(wildcard detector/sources/_lean*.[ch])
	bash scripts/install-system.sh run
	test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -c 'from detector.sources import fast; print("compiled decoder:", fast.WHY_NOT or "built")'
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

install-test: install
	bash scripts/install-system.sh test

run: install
	$(BIN)/falcoctl-py driver install
	$(BIN)/falcoctl-py run

test: install-test
	$(BIN)/pytest -q -p no:cacheprovider; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests ran" >&2; exit 1; fi; exit $$rc

bench: install-test
	$(PY) -m bench

conformance: install
	$(PY) -m tools.conformance $(SHARED)/conformance $(SHARED)/falco-rules

completions: install
	$(PY) -m falcoctl_py.cli.completions completions

lint: install
	$(BIN)/ruff check falcoctl_py detector tools tests bench
	$(BIN)/mypy

# The OCI image localhost/falcoctl-py:<version> (debootstrap rootfs cached in /var/cache/falcoctl-py).
image: install-test
	bash image/build.sh

clean:
	rm -rf $(VENV) build *.egg-info
