# Two commands on a fresh machine (python3, pip, make):
#   make digits   train LeNet-5 on the bundled digits, print test accuracy, save the model
#   make test     the whole suite, once per Keras backend, each in its own process
# Both create (once) and reuse the virtual environment in .venv.

VENV ?= .venv
PY := $(VENV)/bin/python
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=

.PHONY: digits test install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[jax,torch,dev]"
	touch $@

digits: install
	$(PY) -m kcnn.demo

test: install
	$(PY) tests/run_backends.py --backends $(BACKENDS) -- $(PYTEST_ARGS)
