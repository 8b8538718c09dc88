# Two commands from a fresh clone: `make demo` and `make test`. Each sets up .venv first when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
# EasyOCR writes its user-network folder here instead of ~/.EasyOCR
export EASYOCR_MODULE_PATH ?= $(abspath resources/easyocr)
CORES ?= 2

FAIRSEQ_VENV ?= .venv-fairseq

.PHONY: demo test test-fairseq test-slurm venv lint clean bench bench-large bench-gpu

venv: $(STAMP)

# Last, the project itself, editable (pyproject.toml): its packages import from any folder with
# the venv's Python (a notebook elsewhere), the code staying this checkout's. PYTHONWARNINGS
# quiets setuptools' notice that folders named like the packages take precedence (they are them).
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
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
	DMMS_REQUIRE_FAIRSEQ=1 $(FAIRSEQ_VENV)/bin/python -m pytest -q tests/extract/test_fairseq.py

# The SLURM profile on a real single-node Slurm: as root on Debian it installs Slurm, starts its
# daemons by hand, runs a small demo target through --profile profiles/slurm and checks sacct,
# a cancelled job's retry and the results against a local run (tests/slurm/run.sh, ~5 min).
test-slurm: $(STAMP)
	bash tests/slurm/run.sh

# Benchmarks (BENCHMARKS.md lists every figure and its limit); JSON goes to bench/results/.
# CPU, ~15 min on 2 cores: store merge memory, extraction pipeline vs bare forward, training
# FLOP rate vs GEMM rate at MM-IMDb scale, the grid's CPU path.
bench: $(STAMP)
	$(PY) bench/store_memory.py --out bench/results/store_memory_400mb.json
	$(PY) bench/extract_throughput.py --device cpu --quick --out bench/results/extract_throughput_cpu.json
	$(PY) bench/train_throughput.py --samples 25959 --epochs 2 --pools max --threads 1 \
		--out bench/results/train_cpu_26k.json
	$(PY) bench/grid_throughput.py --device cpu --quick --out bench/results/grid_cpu_quick.json

# 1M samples: a 4 GB store merged and loaded, and a host-resident training epoch (~8 GB disk, ~6 GB RAM).
bench-large: $(STAMP)
	$(PY) bench/store_memory.py --samples 1000000 --dim 2048 --shards 4 --out bench/results/store_memory_1m.json
	$(PY) bench/train_throughput.py --samples 1000000 --feature-device host --width-divisor 8 --epochs 1 \
		--pools max --threads 1 --out bench/results/train_cpu_1m_host.json

# On a CUDA box: extraction, training and grid benchmarks in one run; JSON in bench-out/.
bench-gpu: $(STAMP)
	bash bench/gpu_check.sh

lint: $(STAMP)
	snakemake --lint
	snakefmt --check Snakefile rules

clean:
	rm -rf results logs .snakemake
