# Two commands from a fresh clone: `make demo` and `make test`. Each sets up .venv first when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
# EasyOCR writes its user-network folder here instead of ~/.EasyOCR
export EASYOCR_MODULE_PATH ?= $(abspath resources/easyocr)
CORES ?= 2

.PHONY: demo test venv lint clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

demo: $(STAMP)
	snakemake --cores $(CORES)

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	snakemake --lint
	snakefmt --check Snakefile rules

clean:
	rm -rf results logs .snakemake
