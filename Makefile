# Two commands do all set-up on a fresh machine:
#   make study   create the environment if missing, then run the default study (PARAMS=params/real-mini.yaml)
#   make test    create the environment if missing, then lint and run the fast test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PARAMS ?= params/real-mini.yaml
NAME   ?=
ARGS   ?=
# torch: the 2.13.0 CPU wheel here; set TORCH='torch==2.x.y' (a CUDA build) on GPU machines.
TORCH  ?= torch==2.13.0
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS ?= 1

.PHONY: env study world lint test test-all bench docs readme-figure report-check clean-env

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/lock.txt requirements/dev.txt requirements/no-deps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements/lock.txt -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps -r requirements/no-deps.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

study: env
	$(PY) -m provenance_lib run $(PARAMS) $(if $(NAME),--name $(NAME)) $(ARGS)

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -m "not slow" -q

test-all: env
	$(PY) -m pytest -q

# The report as a person sees it: headless Chromium (Debian's, installed when missing) opens runs/<run>/report of
# each run in RUNS (built first when missing: the testbed study takes ~20 min on 2 cores), checks that every figure
# drew, no table is empty or cut short and no console error was raised, and keeps screenshots in runs/screenshots/.
RUNS ?= paper-released testbed
report-check: env
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q --no-install-recommends chromium)
	for run in $(RUNS); do test -f runs/$$run/report/index.html || $(PY) -m provenance_lib run params/$$run.yaml \
		|| exit 1; done
	REPORT_RUNS="$(addprefix runs/,$(RUNS))" $(PY) -m pytest -q -m slow tests/test_report_browser.py

# The documentation site: the paper-released and testbed studies are run first (every current stage is reused), their
# executed notebooks are copied into docs/executed/, and Sphinx builds docs/_build/html/ with warnings as errors.
DOCS_RUNS ?= paper-released testbed
docs: env
	$(foreach run,$(DOCS_RUNS),$(PY) -m provenance_lib run params/$(run).yaml && ) true
	$(PY) docs/collect.py $(DOCS_RUNS)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

# Every bench script at its default sizes, results into bench/results/ (bench/study_memory.py, the real-mini
# study's memory, runs apart: it runs the whole study).
bench: env
	for script in bench/bench_*.py; do $(PY) $$script || exit 1; done

clean-env:
	rm -rf $(VENV)

# The README's figure: stage 04's profile correlations on the paper's released matrix (the paper-released study).
readme-figure: env
	$(PY) -m provenance_lib run params/paper-released.yaml
	cp runs/paper-released/04_contrast/profile_correlations.png docs/figures/profile_correlations.png
