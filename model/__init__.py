"""Deep Multi-Modal Sets: training runs and applying them, `python -m model train|predict`
(model/__main__.py). The tables and figures over run folders are the report/ package.

A training run reads six modules, in this order: options.py (what it is given: pool, features,
options; torch-free), inputs.py (the manifest's targets and splits, the stores as tables,
batches), networks.py (the model its pool builds), train.py (load -> build -> fit -> evaluate ->
write), metrics.py and runfiles.py (the run folder's files). predict.py applies a trained run.
"""
