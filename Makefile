# The two commands: `make demo` (the main job on the bundled samples) and `make test`.
# The demo has its own light venv (ser-edge and its runtime dependencies, deploy/demo/setup.sh);
# everything else uses the development venv (both packages and the test tools, deploy/dev/setup.sh).
VENV := .venv
STAMP := $(VENV)/.setup-done
DEMO_VENV := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.setup-done
# Where the shared corpora live (RAVDESS, TESS, CREMA-D metadata); override on the command line.
SER_DATASETS ?= $(abspath ../shared/datasets)
export SER_DATASETS

.PHONY: demo test bench lint format setup demo-setup

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/python deploy/demo/demo.py

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

demo-setup: $(DEMO_STAMP)

$(DEMO_STAMP): deploy/demo/setup.sh deploy/dev/apt-install-missing edge/pyproject.toml
	DEMO_VENV=$(DEMO_VENV) deploy/demo/setup.sh
	touch $@

$(STAMP): deploy/dev/setup.sh deploy/dev/apt-install-missing deploy/dev/requirements-dev.txt edge/pyproject.toml training/pyproject.toml
	deploy/dev/setup.sh
	touch $@
