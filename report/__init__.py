"""Tables and figures over run folders: `python -m report SUBCOMMAND` (report/__main__.py).

Every report reads run folders through runs.py (one row per experiment over seeds) and writes
its tables through tables.py (`mean ± std` cells, CSV, markdown, HTML). Above model/: it reads
the run folder's files through model/runfiles.py, and robustness rebuilds runs through
model/predict.py; nothing below imports it.
"""
