# semlib: one command to reproduce, one to test. Works from a machine with only Python 3.11 + pip.
PYTHON ?= python3
VENV ?= .venv
PRESET ?= laptop
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
# notebooks run in their own folders: hand them an absolute data path
ifdef SEMLIB_DATA
export SEMLIB_DATA := $(abspath $(SEMLIB_DATA))
endif
export MPLBACKEND ?= Agg

.PHONY: install reproduce plan zoo figures test test-fast notebooks bench clean-smoke help

help:
	@echo "make reproduce [PRESET=smoke|laptop|paper] [EXECUTOR=ray]  run every notebook into outputs/<nb>/<preset>/"
	@echo "make plan [PRESET=...]                       what reproduce would run and how long it should take here"
	@echo "make zoo [PRESET=...] [EXECUTOR=ray]          retrain the preset's zoo from scratch"
	@echo "make figures [PRESET=...]                    redraw every figure from the committed tables (seconds)"
	@echo "make test                                    the whole suite (unit, notebooks on smoke, nbval)"
	@echo "make bench                                   benchmarks (ratios, printed)"
	@echo "Data: set SEMLIB_DATA=/path/to/cifar10 (the .npz shards or cifar-10-batches-py)."

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,browser,ray]'
	# test-only reference; --no-deps: it pins torchvision and an old requests
	$(BIN)/python -m pip install --quiet --no-deps torchattacks==3.5.1
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/python -m semlib.pipeline --preset $(PRESET) $(if $(EXECUTOR),--executor $(EXECUTOR)) $(NOTEBOOKS)

plan: $(STAMP)
	$(BIN)/python -m semlib.pipeline --plan --preset $(PRESET) $(NOTEBOOKS)

zoo: $(STAMP)
	$(BIN)/python -m semlib.pipeline --preset $(PRESET) --retrain-zoo $(if $(EXECUTOR),--executor $(EXECUTOR)) notebooks/01_zoo.ipynb

figures: $(STAMP)
	$(BIN)/python -m semlib.figures --preset $(PRESET)

test: $(STAMP)
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval-lax -p no:cacheprovider outputs/*/smoke/*.ipynb

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_attacks.py
	$(BIN)/python benchmarks/bench_zoo_recipes.py
	$(BIN)/python benchmarks/bench_ray.py
	$(BIN)/python benchmarks/bench_device.py

clean-smoke:
	rm -rf zoo/smoke outputs/*/smoke
