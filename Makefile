# Two commands on a fresh machine: `make demo` (the main job on built-in defaults) and
# `make test` (the whole test suite). Both create the virtual environment if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test env clean arm-check

env: $(STAMP)

# torch==2.13.0 first: the CPU wheel (local on the development machines); an unpinned
# torch would pull a multi-GB CUDA build. The package's own `torch>=2.1` is then satisfied.
# timm (the classifiers' equality test) without its dependencies: it declares torchvision,
# whose wheels for torch 2.13 are CUDA builds; the test imports timm without torchvision.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps timm==1.0.31
	touch $(STAMP)

# The main job on built-in defaults: a latency-budget search on the shipped device table,
# brief validation of the best networks on the procedural dataset, and the report against
# B0-B3, SegFormer and SegNeXt measured here (resumes if run again).
demo: $(STAMP)
	$(BIN)/evit-nas demo

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# The device agent on aarch64 end to end: builds (once, cached, needs root) and boots an arm64
# Debian guest under qemu, profiles it over SSH, kills the agent once and resumes, checks the
# table (benchmarks/arm_check.py; writes benchmarks/results/arm_check.json). Emulated: minutes.
arm-check: $(STAMP)
	nice -n 19 $(BIN)/python benchmarks/arm_check.py

clean:
	rm -rf $(VENV) build *.egg-info
