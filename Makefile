# Two entry points: `make sweep` and `make test`. Both create .venv on first use.
# torch/torchvision are pinned to the builds this project is tested with; a newer
# pin would make every fresh machine download several GB.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
# The slow tests mostly wait on process starts (Ray, trial workers, servers): two workers keep both cores busy.
# TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2

.PHONY: sweep test test-fast lint format benchmark benchmark-gpu benchmark-stopping clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

sweep: $(STAMP)
	$(BIN)/tuner sweep --preset quick --name $${NAME:-default-$$(date +%Y%m%d-%H%M%S)} $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check tuner tests benchmarks
	$(BIN)/ruff check tuner tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format tuner tests benchmarks
	$(BIN)/ruff check --fix tuner tests benchmarks

benchmark: $(STAMP)
	$(BIN)/python benchmarks/trial_throughput.py $(ARGS)

# Training images/s per GPU for 1, 4, 8 and 16 concurrent trials: the plain loop against fused trials and
# CUDA graphs (docs/benchmarks.md, "GPU training throughput: routes"). Runs on a CPU too, without the graph routes.
benchmark-gpu: $(STAMP)
	$(BIN)/python benchmarks/gpu_training.py $(ARGS)

benchmark-stopping: $(STAMP)
	$(BIN)/python benchmarks/early_stopping.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
