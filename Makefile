# Two commands from a fresh clone: `make demo` and `make test`. Each sets up .venv first when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
# EasyOCR writes its user-network folder here instead of ~/.EasyOCR
export EASYOCR_MODULE_PATH ?= $(abspath resources/easyocr)
CORES ?= 2

FAIRSEQ_VENV ?= .venv-fairseq

.PHONY: demo test test-fairseq venv lint clean

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

# The optional fairseq backend lives in its own venv (fairseq pins what .venv must not); its test
# must run there for real, so DMMS_REQUIRE_FAIRSEQ turns a missing fairseq into a failure.
$(FAIRSEQ_VENV)/.installed: requirements-fairseq.txt
	test -x $(FAIRSEQ_VENV)/bin/python || python3 -m venv $(FAIRSEQ_VENV)
	$(FAIRSEQ_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FAIRSEQ_VENV)/bin/python -m pip install --quiet -r requirements-fairseq.txt
	touch $@

test-fairseq: $(FAIRSEQ_VENV)/.installed
	DMMS_REQUIRE_FAIRSEQ=1 $(FAIRSEQ_VENV)/bin/python -m pytest -q tests/test_fairseq.py

lint: $(STAMP)
	snakemake --lint
	snakefmt --check Snakefile rules

clean:
	rm -rf results logs .snakemake
