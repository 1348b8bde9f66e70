# The two commands: `make demo` (the main job on the bundled samples) and `make test`.
VENV := .venv
STAMP := $(VENV)/.setup-done
# Where the shared corpora live (RAVDESS, TESS, CREMA-D metadata); override on the command line.
SER_DATASETS ?= $(abspath ../shared/datasets)
export SER_DATASETS

.PHONY: demo test bench lint format setup

demo: $(STAMP)
	$(VENV)/bin/python deploy/demo/demo.py

test: $(STAMP)
	$(VENV)/bin/ruff check edge training tests deploy
	$(VENV)/bin/ruff format --check edge training tests deploy
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=30 tests

bench: $(STAMP)
	$(VENV)/bin/ser-edge bench frontend
	$(VENV)/bin/ser-edge bench daemon --gate speech --reference-bundle deploy/models/ser-tiny
	$(VENV)/bin/python deploy/arduino/m4/bench.py

lint: $(STAMP)
	$(VENV)/bin/ruff check edge training tests deploy

format: $(STAMP)
	$(VENV)/bin/ruff format edge training tests deploy

setup: $(STAMP)

$(STAMP): deploy/dev/setup.sh deploy/dev/requirements-dev.txt edge/pyproject.toml training/pyproject.toml
	deploy/dev/setup.sh
	touch $@
