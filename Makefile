# Two targets do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# torch first, pinned to the CPU wheel: anything that needs torch installed before it
# would pull a multi-GB CUDA build. Override on a GPU box: make test TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
OUT    ?= out
PIP     = $(BIN)/python -m pip -q --disable-pip-version-check

# `make mutation`: every module scripts/mutation.py lists (where a silent bug loses data), or
# one: make mutation MODULE=tokenmill/shards/megatron.py. MUTATION_JOBS mutants at a time.
MODULE ?=
MUTATION_JOBS ?= 1

.PHONY: demo test test-slow mutation install dev lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e '.[dev,eval]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev

demo: $(VENV)/.installed
	$(BIN)/tokenmill prepare --out $(OUT)

# the default suite: everything but the `slow` marker (pytest's addopts)
test: $(VENV)/.dev
	$(BIN)/python -m pytest

# the `slow` marker only (a later -m overrides addopts' -m 'not slow')
test-slow: $(VENV)/.dev
	$(BIN)/python -m pytest -m slow

# mutmut over each MODULE with its own test files (scripts/mutation.py; docs/TESTING.md)
mutation: $(VENV)/.dev
	$(BIN)/python scripts/mutation.py --jobs $(MUTATION_JOBS) $(MODULE)

lint: $(VENV)/.dev
	$(BIN)/ruff check tokenmill tests benchmarks scripts

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache build/mutation
