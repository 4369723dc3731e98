# Named commands for labline. Every target creates the environment first, from requirements.lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KERNEL := $(VENV)/share/jupyter/kernels/labline/kernel.json

.PHONY: help install run test lab lab-instructor serve bench lock clean

help:
	@echo "make run    run the default Iris pipeline and print the comparison table"
	@echo "make test   run the test suite"
	@echo "make lab    open JupyterLab on the notebooks with the labline kernel; solutions/ is hidden"
	@echo "            (not listed, refused by the contents API: jupyter_server_config.py); tracked notebooks"
	@echo "            are saved without outputs; LAB_ARGS=\"--port=8899 --ip=0.0.0.0 --no-browser\" passes"
	@echo "            arguments; as root it adds --allow-root"
	@echo "make lab-instructor   the same Lab with solutions/ shown"
	@echo "make serve  serve the champion model on http://127.0.0.1:8000"
	@echo "make bench  run the benchmarks (results in benchmarks/results/)"
	@echo "make lock   re-pin requirements.lock from the current environment"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name labline --display-name "Python (labline)" >/dev/null
	$(BIN)/python -m compileall -q labline runner >/dev/null  # bytecode even where PYTHONDONTWRITEBYTECODE is set
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/labline run --report

# Lint and format check first (ruff, configured in pyproject.toml), then the tests.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# The project folder as root, opening notebooks/, with the classroom's server config (jupyter_server_config.py:
# solutions/ hidden, tracked notebooks saved without outputs, the environment's commands first in terminals).
# LAB_ARGS goes to `jupyter lab` last; LAB_ROOT is the folder served (jupyter takes one root_dir).
LAB_ARGS ?=
LAB_ROOT ?= $(CURDIR)
LAB_CONFIG := $(CURDIR)/jupyter_server_config.py
AS_ROOT = $(filter 0,$(shell id -u))
ROOT_NOTE = make $@: running as root (a container?), so jupyter lab gets --allow-root

lab lab-instructor: $(STAMP)
	$(if $(AS_ROOT),@echo "$(ROOT_NOTE)")
	$(BIN)/jupyter lab --config=$(LAB_CONFIG) --ServerApp.root_dir=$(LAB_ROOT) --LabApp.default_url=/lab/tree/notebooks \
		$(if $(AS_ROOT),--allow-root) $(if $(filter lab-instructor,$@),--LablineContentsManager.show_solutions=True) \
		$(LAB_ARGS)

serve: $(STAMP)
	$(BIN)/labline serve

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline_overhead.py

lock: $(BIN)/python
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^labline' > requirements.lock

clean:
	rm -rf runs .labline
