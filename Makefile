# Named commands for labline. Every target creates the environment first, from requirements.lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KERNEL := $(VENV)/share/jupyter/kernels/labline/kernel.json

.PHONY: help install run test lab serve bench lock clean

help:
	@echo "make run    run the default Iris pipeline and print the comparison table"
	@echo "make test   run the test suite"
	@echo "make lab    open JupyterLab on the notebooks with the labline kernel"
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

# The project folder as root, so notebooks/, exercises/ and solutions/ are all at hand; opens notebooks/.
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks

serve: $(STAMP)
	$(BIN)/labline serve

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline_overhead.py

lock: $(BIN)/python
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^labline' > requirements.lock

clean:
	rm -rf runs .labline
