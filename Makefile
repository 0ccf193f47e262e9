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

.PHONY: test demo deps venv lint clean deb deb-deps fuzz package-test lock i18n i18n-pot

# The Debian package (`make deb`, `make package-test`): its own tools, not the suite's.
DEB_BUILD_PACKAGES := debhelper dpkg-dev fakeroot lintian mmdebstrap python3-venv python3-dev gcc swig \
	libpcsclite-dev
# Downloads kept between runs (pip wheels from PyPI, the clean Debian root): git ignores it.
PKG_CACHE ?= .cache/package
PKG_BUILD := build/deb
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' src/cardbridge/__init__.py)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB := dist/cardbridge_$(VERSION)_$(DEB_ARCH).deb

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

LINT_PATHS := src tests $(wildcard bench) $(wildcard fuzz) $(wildcard packaging)

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy src/cardbridge

# The suite first, then the linters, then (unless PACKAGE_TEST=0) the Debian package built and
# installed in a clean Debian 12 root (make package-test, about 3 minutes with warm caches);
# any of them failing fails the run.
PACKAGE_TEST ?= 1

test: deps venv
	@status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	$(MAKE) --no-print-directory lint || status=1; \
	if [ "$(PACKAGE_TEST)" != 0 ]; then $(MAKE) --no-print-directory package-test || status=1; fi; \
	exit $$status

# make demo CARD=esteid: the login with another emulated card (softhsm, piv, esteid,
# esteid-thales, fineid, fineid-v3, belpic; `cardbridge demo --card`); default the SoftHSM2 token.
CARD ?=

demo: deps venv
	$(VENV)/bin/cardbridge demo$(if $(CARD), --card $(CARD))

# Fuzzing (atheris, libFuzzer): every fuzz/fuzz_*.py for FUZZ_SECONDS seconds each, seeded
# from fuzz/seeds/NAME/; inputs that add coverage go to fuzz/corpus/NAME/ and a crash, a
# failed property or an input slower than FUZZ_TIMEOUT seconds to fuzz/artifacts/ (both
# ignored by git). Installs atheris (the fuzz extra) into the venv when it is missing.
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 20

fuzz: venv
	@$(PY) -c 'import atheris' 2>/dev/null || $(PY) -m pip install -q -e '.[fuzz]'
	@status=0; for harness in fuzz/fuzz_*.py; do \
		name=$$(basename $$harness .py); name=$${name#fuzz_}; \
		mkdir -p fuzz/corpus/$$name fuzz/artifacts; \
		seeds=""; if [ -d fuzz/seeds/$$name ]; then seeds=fuzz/seeds/$$name; fi; \
		echo "== $$harness: $(FUZZ_SECONDS) s"; \
		$(PY) $$harness -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) -print_final_stats=1 \
			-artifact_prefix=fuzz/artifacts/$$name- fuzz/corpus/$$name $$seeds || status=1; \
	done; exit $$status

# -- texts (gettext) ------------------------------------------------------------------------------
# The messages are English in the code: i18n.gettext(lang, "…"), ngettext, pgettext, npgettext
# and the CLI's say(args, "…") (a string literal as the message: an expression is not extracted),
# and N_("…") where a message is defined apart from its use. `make i18n` extracts them into the .pot, merges it into each language's .po (new messages
# empty, changed ones fuzzy: translate those, then run it again) and compiles each .po to the .mo
# beside it. The .mo files are committed and shipped (wheel, pip install -e, make deb); a test
# checks that compiling the .po gives them exactly, and that the .pot matches the code.
I18N_DIR := src/cardbridge/i18n
LOCALE_DIR := $(I18N_DIR)/locale
POT ?= $(I18N_DIR)/cardbridge.pot
PYBABEL ?= $(VENV)/bin/pybabel
BABEL_KEYWORDS := --no-default-keywords -k N_ -k gettext:2 -k say:2 -k ngettext:2,3 -k pgettext:2c,3 -k npgettext:2c,3,4

i18n-pot:
	$(PYBABEL) --quiet extract $(BABEL_KEYWORDS) --add-comments=Translators: --sort-by-file --add-location=file \
		--project=cardbridge --version=$(VERSION) --copyright-holder="cardbridge developers" \
		--msgid-bugs-address=cardbridge@cardbridge.invalid -o $(POT).new src/cardbridge
	@# A run that finds nothing new changes no file (the creation date alone is no change).
	@if [ -f $(POT) ] && diff -q -I '^"POT-Creation-Date: ' $(POT) $(POT).new >/dev/null; then \
		rm $(POT).new; else mv $(POT).new $(POT); fi

i18n: venv i18n-pot
	$(PYBABEL) --quiet update --ignore-pot-creation-date -i $(POT) -d $(LOCALE_DIR) -D cardbridge
	$(PYBABEL) compile --statistics -d $(LOCALE_DIR) -D cardbridge

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# -- the Debian package -------------------------------------------------------------------------

deb-deps:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_BUILD_PACKAGES)"

# The package's Python dependencies are hash-pinned in two lock files that git keeps:
# packaging/requirements.lock (what runs: cardbridge's dependencies and its [portal] extra,
# for Debian 12's Python 3.11) and packaging/build-requirements.lock (what builds: the build
# backends of cardbridge and of pyscard, whose sdist is built; from
# packaging/build-requirements.in). tests/test_package_lock.py checks the first against
# pyproject.toml. After changing a dependency in pyproject.toml, regenerate both with
# pip-compile (pip-tools, in a venv of Debian's python3 in the cache):
#     make lock                      # keeps the pins that still fit, adds what is new
#     make lock LOCK_ARGS=--upgrade  # the newest versions that fit
LOCK_VENV := $(PKG_CACHE)/lock-venv
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { /usr/bin/python3 -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/pip install -q "pip-tools>=7.4"; }
	$(PIP_COMPILE) --extra portal --output-file packaging/requirements.lock pyproject.toml
	$(PIP_COMPILE) --output-file packaging/build-requirements.lock packaging/build-requirements.in

# The locked files (wheels, and pyscard's sdist), fetched with Debian's Python, the one the
# package's environment is made with: every file checked against its hash
# (--require-hashes), and pyscard's metadata made with the locked build tools (no unpinned
# download). The folder holds only the locked files; the package build downloads nothing and
# checks the hashes again.
$(PKG_CACHE)/wheels/.fetched: packaging/requirements.lock packaging/build-requirements.lock
	rm -rf $(PKG_CACHE)/wheels $(PKG_CACHE)/pip-venv && mkdir -p $(PKG_CACHE)/wheels
	/usr/bin/python3 -m venv $(PKG_CACHE)/pip-venv
	$(PKG_CACHE)/pip-venv/bin/pip install -q --no-cache-dir --require-hashes --no-deps \
		-r packaging/build-requirements.lock
	$(PKG_CACHE)/pip-venv/bin/pip download -q --no-cache-dir --require-hashes --no-deps --no-build-isolation \
		--dest $(PKG_CACHE)/wheels -r packaging/requirements.lock -r packaging/build-requirements.lock
	@touch $@

# cardbridge_VERSION_ARCH.deb and cardbridge-webeid_VERSION_all.deb in dist/, then lintian.
deb: deb-deps $(PKG_CACHE)/wheels/.fetched
	rm -rf $(PKG_BUILD) && mkdir -p $(PKG_BUILD)/cardbridge-$(VERSION) dist
	git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C $(PKG_BUILD)/cardbridge-$(VERSION)
	printf '%s\n' "cardbridge ($(VERSION)) unstable; urgency=medium" "" \
		"  * cardbridge $(VERSION); its changes are in /usr/share/doc/cardbridge/changelog.gz." "" \
		" -- cardbridge developers <cardbridge@cardbridge.invalid>  $$(date -R -d @$$(git log -1 --format=%ct))" \
		> $(PKG_BUILD)/cardbridge-$(VERSION)/debian/changelog
	cd $(PKG_BUILD)/cardbridge-$(VERSION) && CARDBRIDGE_WHEELS=$(abspath $(PKG_CACHE)/wheels) \
		dpkg-buildpackage --build=binary --no-sign
	mv $(PKG_BUILD)/*.deb dist/
	lintian --fail-on error \
		dist/cardbridge_$(VERSION)_$(DEB_ARCH).deb dist/cardbridge-webeid_$(VERSION)_all.deb

# The packages installed in a clean Debian 12 root (mmdebstrap, cached in $(PKG_CACHE)) and
# used there: version, doctor, logins through the launcher, `serve` and Debian's Chromium,
# cardbridge-webeid, an upgrade, purge. It runs in a mount namespace of its own, so the
# root's mounts go away with it even when it fails (packaging/package_test.py).
package-test: deb venv
	PKG_CACHE=$(abspath $(PKG_CACHE)) unshare --mount --propagation private $(PY) packaging/package_test.py \
		dist/cardbridge_$(VERSION)_$(DEB_ARCH).deb dist/cardbridge-webeid_$(VERSION)_all.deb
