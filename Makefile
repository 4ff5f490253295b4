# am: common tasks. `make setup` needs root (apt-get, starting the engines); `make test` runs as
# root too (its unprivileged tier creates users); the rest runs as you.
# The venv's Python: the system's (what 'make setup' installs with its venv module, and apt
# keeps patched; what sudo's own PATH finds too), not whichever python3 a shell finds first: a
# pyenv build here, without its optimizations, took 21% longer over am's imports. PY=...
# chooses another; a system one older than 3.11, or without its venv module (ensurepip, in
# python3-venv), falls back to python3.
PY ?= $(shell /usr/bin/python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
RUNTIME ?= auto
# After root's work in an ordinary user's checkout ('sudo make test'), hand back what it made.
GIVE_BACK := bash scripts/give-back.sh

.PHONY: setup install test test-fast test-unit test-cluster lint format image clean-agents demo security bench

setup:  ## system packages, running container engines, the proxy image for you (root)
	bash scripts/setup-host.sh; rc=$$?; $(GIVE_BACK); exit $$rc

install:  ## a .venv with am and the test tools (yours, even after a 'sudo make ...')
	@bash scripts/reclaim-checkout.sh
	@# A venv of another interpreter than PY's (made before PY's default changed, or with
	@# another PY) is made again, from PY.
	@want=$$($(PY) -c 'import os, sys; print(os.path.realpath(sys.executable))' 2>/dev/null); \
	if [ -n "$$want" ] && [ -e $(BIN)/python3 ] && [ "$$(readlink -f $(BIN)/python3)" != "$$want" ]; \
	then echo "make: $(VENV) was made with $$(readlink -f $(BIN)/python3); making it again with $$want"; \
		rm -f $(VENV)/.installed; fi
	@$(MAKE) -s --no-print-directory $(VENV)/.installed

# editable_mode=compat: a plain path entry, no import hook (docs/performance.md); its
# deprecation notice is a page of warnings a new user cannot act on.
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv --clear $(VENV)
	$(BIN)/pip install -q --upgrade pip
	PYTHONWARNINGS='ignore:Compat editable installs' \
		$(BIN)/pip install -q -e '.[test,dev]' --config-settings editable_mode=compat
	@# The venv's own setuptools (the build used an isolated one) only adds a .pth file
	@# that imports its distutils shim at every Python start: 1 ms of each am command.
	$(BIN)/pip uninstall -q -y setuptools
	touch $@
	@$(GIVE_BACK)

test: lint  ## lint, then the whole suite: unit, tmux end-to-end, both container engines
	$(BIN)/pytest -q -ra; rc=$$?; $(GIVE_BACK); exit $$rc

test-fast: lint  ## lint, then everything that needs no container engine
	$(BIN)/pytest -q -ra -m "not container"; rc=$$?; $(GIVE_BACK); exit $$rc

test-unit: install  ## the unit tests alone (tests/unit, laid out like am/): pure composition, no engine, no tmux
	$(BIN)/pytest -q -ra tests/unit; rc=$$?; $(GIVE_BACK); exit $$rc

test-cluster: install  ## Kubernetes agents on a real cluster: AM_TEST_KUBECONFIG (docs/scale.md)
	AM_TEST_CLUSTER_TIER=1 $(BIN)/pytest -q -ra tests/cluster

lint: install  ## ruff's checks and format, no new import cycle, and mypy over the typed modules (pyproject's tool.mypy)
	$(BIN)/ruff check am tests scripts && \
	$(BIN)/ruff format --check am tests scripts && \
	$(BIN)/python scripts/import_cycles.py && \
	$(BIN)/mypy; rc=$$?; $(GIVE_BACK); exit $$rc

format: install  ## ruff format over the tree
	$(BIN)/ruff format am tests scripts; rc=$$?; $(GIVE_BACK); exit $$rc

image: install  ## the agent image for RUNTIME (docker, podman or auto); AGENTS=claude,codex,...
	$(BIN)/am image build --runtime $(RUNTIME) $(if $(AGENTS),--agents $(AGENTS)); rc=$$?; $(GIVE_BACK); exit $$rc

clean-agents: install  ## every labelled container of this AM_HOME and stopped agents' records
	$(BIN)/am clean --containers $(if $(YES),--yes)  # asks first on a terminal; YES=1: no question

security: install  ## the security suite and container policy checks, as a table
	$(BIN)/python scripts/security_report.py; rc=$$?; $(GIVE_BACK); exit $$rc

bench: install  ## benchmarks against their floors; rewrites docs/performance.md
	$(BIN)/python scripts/bench.py; rc=$$?; $(GIVE_BACK); exit $$rc

demo: install  ## the main job: a container agent on a sample repository, then `am list`
	bash scripts/demo.sh; rc=$$?; $(GIVE_BACK); exit $$rc
