# cardbridge — the two commands: `make demo` and `make test`.
# Each installs what it needs when it is missing: Debian packages (as root, after
# apt-get update) and a virtual environment in .venv with the package and its test extras.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
DEB_PACKAGES := python3-venv python3-dev gcc softhsm2 opensc opensc-pkcs11 pcscd vsmartcard-vpcd pcsc-tools \
	libpcsclite-dev swig p11-kit p11-kit-modules pinentry-tty redis-server chromium
PYTEST_ARGS ?=

.PHONY: test demo deps venv lint clean

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "Missing Debian packages:$$missing"; \
			echo "Install them as root: sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; fi; \
		echo "Installing Debian packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

LINT_PATHS := src tests $(wildcard bench)

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy src/cardbridge

# The suite first, then the linters; either failing fails the run.
test: deps venv
	@status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	$(MAKE) --no-print-directory lint || status=1; exit $$status

demo: deps venv
	$(VENV)/bin/cardbridge demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
