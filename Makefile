# Two commands on a fresh machine: `make demo` (the main job on built-in defaults) and
# `make test` (the whole test suite). Both create the virtual environment if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test env clean

env: $(STAMP)

# torch==2.13.0 first: the CPU wheel (local on the development machines); an unpinned
# torch would pull a multi-GB CUDA build. The package's own `torch>=2.1` is then satisfied.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on built-in defaults: a latency-budget search on the shipped device table
# (resumes the same study if run again).
demo: $(STAMP)
	$(BIN)/evit-nas describe efficientvit_seg_b0 --resolution 256x512
	$(BIN)/evit-nas search --table latency_tables/x86_64_xeon_2core_256x512_t1.csv --budget-ms 50 --trials 300

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
