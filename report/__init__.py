"""Tables and figures over run folders: `python -m report SUBCOMMAND` (see report/__main__.py).
Above model/ (it reads run folders through model/runfiles.py; robustness rebuilds runs through
model/predict.py); nothing below imports it.
"""
