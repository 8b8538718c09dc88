"""Datasets: one adapter per input format (an MM-IMDb folder, the Ads annotation CSV, an own table)
giving manifest rows, the demo composer, the archive download and the paper's tables;
`python -m data manifest|download`. The manifest file itself: core/manifest.py."""
