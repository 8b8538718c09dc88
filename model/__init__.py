"""Deep Multi-Modal Sets: set encoders and pooling, the per-modality and concat baselines, training,
metrics, reports.

`python -m model train|table|figure` is the command line; see `model/__main__.py`.
"""
