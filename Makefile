# Two commands do all set-up on a fresh machine:
#   make study   create the environment if missing, then run the default study (PARAMS=params/real-mini.yaml)
#   make test    create the environment if missing, then run the test suite (slow real-mini tests excluded)
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

.PHONY: env study world test test-all bench clean-env

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/lock.txt requirements/no-deps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements/lock.txt
	$(PY) -m pip install -q --no-deps -r requirements/no-deps.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

study: env
	$(PY) -m provenance_lib run $(PARAMS) $(if $(NAME),--name $(NAME)) $(ARGS)

test: env
	$(PY) -m pytest -m "not slow" -q

test-all: env
	$(PY) -m pytest -q

bench: env
	for script in bench/*.py; do $(PY) $$script || exit 1; done

clean-env:
	rm -rf $(VENV)
