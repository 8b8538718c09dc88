"""The workflow's config logic, importable without Snakemake or torch (rules/ and tests/ use it).

| file | job |
|---|---|
| `paths.py` | the path patterns of results/ and the weights records (`MANIFEST`, `STORE`, ..., `CELL_DIR`, `RUN_DIR`), the `run` wildcard |
| `plan.py` | `Plan`: the training grid, each dataset's features and outputs, the `predict:` and `paper_strict` checks, each rule's inputs and arguments |
| `shards.py` | shard counts (`shards: auto`) and the extraction order, from the extractor catalogue's costs |
| `progress.py` | `python -m pipeline.progress`: the progress view, read from the jobs' logs |
"""
