# Doelpoort — the two commands a newcomer needs are `make run` and `make test`.
#
# Everything is installed from the committed lock: the uv in requirements-uv.txt (pinned
# by hash) installs exactly what uv.lock holds into .venv, so a fresh clone gets the same
# versions next month as today. Moving to newer versions is `make upgrade`, a deliberate
# step that rewrites the lock and runs the whole suite before it is committed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_DIR := .uv
UV     := $(UV_DIR)/bin/uv
STAMP  := $(VENV)/.installed
# The DPO console's browser tests drive Debian's chromium (never a browser download).
CHROMIUM := /usr/bin/chromium

# uv uses the machine's Python (never downloads one) and keeps its cache out of the tree.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint fmt bench demo upgrade clean

$(UV): requirements-uv.txt
	$(PYTHON) -m venv $(UV_DIR)
	$(UV_DIR)/bin/pip install --quiet --disable-pip-version-check --require-hashes \
		--no-deps -r requirements-uv.txt
	touch $(UV)

$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --python $(PYTHON) --quiet
	touch $(STAMP)

## run: set up everything under var/ (PKI, keys, demo data) and serve https://127.0.0.1:8443
run: $(STAMP)
	$(BIN)/doelpoort serve --setup

## test: lint gate, then the whole test suite (installs Debian's chromium if missing)
test: lint $(CHROMIUM)
	$(BIN)/pytest -q

# Only when it is missing: as root, else with sudo; a clear message when neither works.
$(CHROMIUM):
	@echo "installing Debian's chromium for the DPO console's browser tests"
	@if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "error: $(CHROMIUM) is missing and this is neither root nor has sudo:" \
		"run 'apt-get install -y --no-install-recommends chromium' as root" >&2; exit 1; fi; \
	$$sudo apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends chromium || { \
		echo "error: could not install chromium with apt-get; install Debian's chromium" \
			"package by hand (the browser tests need $(CHROMIUM))" >&2; exit 1; }

## lint: ruff (format + lint), mypy strict, import contracts, declared dependencies
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/deptry .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## upgrade: move uv.lock (and the pinned uv) to the newest allowed versions, then the suite
upgrade: $(UV)
	echo "uv" | $(UV) pip compile - --generate-hashes --no-header --quiet \
		--python-version 3.11 -o requirements-uv.new
	{ sed -n '1,2p' requirements-uv.txt; cat requirements-uv.new; } > requirements-uv.tmp
	mv requirements-uv.tmp requirements-uv.txt
	rm requirements-uv.new
	$(UV) lock --upgrade
	$(MAKE) test
	@echo "review 'git diff uv.lock requirements-uv.txt', then commit them with the suite green"
	@echo "(the build backend is pinned in pyproject.toml's [build-system]: move it by hand)"

## bench: SPEC §10 figures in one run
bench: $(STAMP)
	$(BIN)/python -m bench

## demo: scripted exchange against a running gateway (start `make run` first)
demo: $(STAMP)
	$(BIN)/doelpoort demo

clean:
	rm -rf $(VENV) $(UV_DIR) var .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
