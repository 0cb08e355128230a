# The two commands: `make demo` and `make test`. Each creates .venv when missing and installs what it needs:
# torch==2.13.0 first (so pip never pulls a CUDA build), then worldsmith with its test extras.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: demo test install bench clean

demo: $(STAMP)
	$(BIN)/worldsmith demo

test: $(STAMP)
	$(BIN)/python -m pytest

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m pip install --quiet --no-deps 'scenedetect==0.7.2'
	$(BIN)/python benchmarks/io.py
	$(BIN)/python benchmarks/worlds.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
