# pykernels — the commands a new user needs: `make demo` and `make test` (each runs `setup` first).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pykernels-installed
SOURCES := pyproject.toml CMakeLists.txt $(shell find csrc -type f 2>/dev/null)
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
BENCH_TAG = $(eval BENCH_TAG := $$(shell $(PY) benchmarks/machine_tag.py))$(BENCH_TAG)
BENCH_STORAGE = file://benchmarks/results/$(BENCH_TAG)
BENCH_THRESHOLD ?= 10%
# dev: pytest & co; fed, recon, vision: what the method packages and their test baselines need.
EXTRAS ?= dev,fed,recon,vision

.PHONY: setup demo test test-fast bench bench-check lint clean

setup: $(STAMP)

# Creates the venv unless VENV names an existing one; installs torch only when it is not importable
# (torch==2.13.0: on these machines a CPU wheel from local disk), then the project with its extensions.
$(STAMP): $(SOURCES)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[$(EXTRAS)]"
	@touch $@

demo: setup
	$(PY) -m kernels demo
	$(PY) -m pyfed compare --algos fedavg,fedmuon --dataset digits --clients 20 --alpha 0.1 --rounds 30 \
		--threads 1 --target 0.85 --name demo-fedmuon-vs-fedavg --overwrite
	$(PY) -m pyfed train --algo dp-fedpgn --dataset digits --clients 50 -S 10 --alpha 0.6 --rounds 10 \
		--target-epsilon 8 --threads 1 --name demo-dp-fedpgn --overwrite --no-progress
	$(PY) -m pyfed.dp runs/demo-dp-fedpgn

test: setup
	$(PY) -m pytest tests

bench: setup
	$(PY) -m pytest benchmarks -q --benchmark-only --benchmark-storage=$(BENCH_STORAGE) --benchmark-autosave
	@echo "saved under benchmarks/results/$(BENCH_TAG)"

# Compares against the last run saved by `make bench` on a machine of the same tag, never another's.
bench-check: setup
	@ls benchmarks/results/$(BENCH_TAG)/*/*.json >/dev/null 2>&1 || \
		{ echo "no saved run for machine tag $(BENCH_TAG): run 'make bench' first"; exit 2; }
	$(PY) -m pytest benchmarks -q --benchmark-only --benchmark-storage=$(BENCH_STORAGE) \
		--benchmark-compare --benchmark-compare-fail=median:$(BENCH_THRESHOLD)

lint: setup
	$(PY) -m ruff check kernels pyfed pyrecon pyvision tests benchmarks

clean:
	rm -rf build .pytest_cache .ruff_cache
