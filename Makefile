# ganforge: `make demo` and `make test` work on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch (a file on this machine's disk); plain `torch` from PyPI is a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

GAN    ?= lsgan
STEPS  ?= 1500
DEMO   := data/demo

.PHONY: install demo test test-fast clean-demo

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(BIN)/.installed

# Demo data: scikit-learn's handwritten digits (shipped inside the package, no download),
# 8x8 scans sharded at 16 px.
$(DEMO)/shards/manifest.json: $(BIN)/.installed
	rm -rf $(DEMO)/digits
	$(BIN)/ganforge data demo --out $(DEMO)/digits --size 16
	$(BIN)/ganforge data shard --src $(DEMO)/digits --out $(DEMO)/shards --size 16 --channels L --shard-size 200 --overwrite

demo: $(DEMO)/shards/manifest.json
	$(BIN)/ganforge train $(GAN) --data $(DEMO)/shards --workers 2 --steps $(STEPS)

test: $(BIN)/.installed
	$(BIN)/python -m pytest

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow"

clean-demo:
	rm -rf $(DEMO) mlflow.db mlartifacts ray_results
