# Doelpoort — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint fmt bench demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: set up everything under var/ (PKI, keys, demo data) and serve https://127.0.0.1:8443
run: $(STAMP)
	$(BIN)/doelpoort serve --setup

## test: lint gate, then the whole test suite
test: lint
	$(BIN)/pytest -q

## lint: ruff (format + lint) and mypy strict
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: SPEC §10 figures in one run
bench: $(STAMP)
	$(BIN)/python -m bench

## demo: scripted exchange against a running gateway (start `make run` first)
demo: $(STAMP)
	$(BIN)/doelpoort demo

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
