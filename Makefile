# ganforge: `make demo` and `make test` work on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch (a file on this machine's disk); plain `torch` from PyPI is a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

GAN    ?= lsgan
STEPS  ?= 1500
DEMO   := data/demo

.PHONY: install browser demo tune-demo test test-fast test-search lint clean-demo

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" uv
	# uv resolves and installs the rest in about 30 s (pip: about 100 s here); it keeps the
	# torch installed above, which pip finds on this machine's disk and uv would not.
	# --compile-bytecode: this machine sets PYTHONDONTWRITEBYTECODE, so without .pyc files
	# every Ray worker would compile Ray, MLflow and their dependencies from source at start
	# (it made the Ray end-to-end tests 2 to 3 times slower).
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e ".[test]"
	touch $@

install: $(BIN)/.installed

# Demo data from scikit-learn's handwritten digits (shipped inside the package, no download):
# one-domain GANs learn the 8x8 scans at 16 px; translation GANs map the digits to MNIST-M-style
# digits textured with crops of scikit-learn's two sample photos, at 32 px.
DATA_lsgan    := $(DEMO)/digits-16
DATA_stylegan := $(DEMO)/digits-16
DATA_cyclegan := $(DEMO)/digits-mnistm-32
DATA_discogan := $(DEMO)/digits-mnistm-32

$(DEMO)/digits-16/manifest.json: $(BIN)/.installed
	rm -rf $(DEMO)/digits
	$(BIN)/ganforge data demo --out $(DEMO)/digits --size 16
	$(BIN)/ganforge data shard --src $(DEMO)/digits --out $(DEMO)/digits-16 --size 16 --channels L --shard-size 200 --overwrite

$(DEMO)/digits-mnistm-32/manifest.json: $(BIN)/.installed
	rm -rf $(DEMO)/digits-mnistm
	$(BIN)/ganforge data demo --two-domain --out $(DEMO)/digits-mnistm --size 32
	$(BIN)/ganforge data shard --domain-a $(DEMO)/digits-mnistm/A --domain-b $(DEMO)/digits-mnistm/B \
		--out $(DEMO)/digits-mnistm-32 --size 32 --channels RGB --shard-size 200 --overwrite

demo: $(if $(DATA_$(GAN)),$(DATA_$(GAN))/manifest.json,$(error GAN=$(GAN): choose lsgan, stylegan, cyclegan or discogan))
	$(BIN)/ganforge train $(GAN) --data $(DATA_$(GAN)) --workers 2 --steps $(STEPS) --config pipelines/configs/demo/$(GAN).yaml

# The README's learning-rate balance searches on the demo data: 13 one-worker trials, the
# default equal rates first (GAN=lsgan about 23 minutes on 2 cores, GAN=discogan about 27).
# SHORT=1: the same searches at a quarter of the step budget (about 7 minutes each).
tune-demo: $(if $(filter lsgan discogan,$(GAN)),$(DATA_$(GAN))/manifest.json)
	@case "$(GAN)" in lsgan|discogan) ;; *) echo "tune-demo: GAN=$(GAN): choose lsgan or discogan" >&2; exit 2;; esac
	$(BIN)/ganforge tune $(GAN) --data $(DATA_$(GAN)) --name demo-$(GAN)$(if $(SHORT),-short)-$(shell date +%m%d-%H%M%S) \
		--config pipelines/configs/demo/$(GAN).yaml --config pipelines/configs/demo/tune-$(GAN).yaml \
		$(if $(SHORT),--config pipelines/configs/demo/tune-$(GAN)-short.yaml)

# The MLflow UI test drives Debian's headless Chromium through its ChromeDriver (never a
# browser downloaded at run time). Installed as root, or through sudo; elsewhere that test skips.
browser:
	@if [ ! -x /usr/bin/chromedriver ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
		else echo "make browser: no root: install Debian's chromium and chromium-driver for the MLflow UI test" >&2; exit 0; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver >/dev/null; \
	fi

# The lint and type checks, then everything, the Ray Tune searches included: CI allows
# 30 minutes of suite on 2 cores.
test: $(BIN)/.installed browser lint
	$(BIN)/python -m pytest --durations=25

# ruff's lint and format checks over the tree; mypy over gan_core and pipelines (pyproject.toml).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow"

# Only the real Ray Tune searches of real Ray Train trials: ASHA, PBT, interrupt and resume
# (about 3 minutes on 2 cores; make test runs them too).
test-search: $(BIN)/.installed
	$(BIN)/python -m pytest -m search

clean-demo:
	rm -rf $(DEMO) mlflow.db mlartifacts ray_results
