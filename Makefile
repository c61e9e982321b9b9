# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create the local virtual environment .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/tfcovid: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/tfcovid

demo: install
	$(BIN)/tfcovid demo --out demo_out

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/flake8 tfcovid tests examples

clean:
	rm -rf $(VENV) demo_out *.egg-info
