"""The workflow's config logic, importable without Snakemake or torch (rules/ and tests/ use it).

| file | job |
|---|---|
| `paths.py` | every path pattern (`MANIFEST`, `STORE`, ..., `CELL_DIR`, `RUN_DIR`), the `run` wildcard |
| `plan.py` | `Plan`: the training grid, each dataset's features and outputs, the `predict:` and `paper_strict` checks, each rule's inputs and arguments |
"""
