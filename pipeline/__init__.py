"""The workflow's config logic, importable without Snakemake or torch (rules/ and tests/ use it).

| file | job |
|---|---|
| `paths.py` | the path patterns of every output: the composed and downloaded datasets, results/, the weights records (`COMPOSED`, `MANIFEST`, `STORE`, ..., `CELL_DIR`, `RUN_DIR`), the `run` wildcard |
| `plan.py` | `Plan`: the training grid, each dataset's features and outputs, the `predict:` and `paper_strict` checks, each rule's inputs and arguments |
| `shards.py` | shard counts (`shards: auto`) and the extraction order, from the extractor catalogue's costs |
| `progress.py` | `python -m pipeline.progress`: the progress view, read from the jobs' logs |
| `interpreter.py` | which Python the jobs run: `python` on PATH, or the Python running Snakemake first when only it has the packages |
"""
