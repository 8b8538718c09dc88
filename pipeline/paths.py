"""The paths of what the workflow makes: the datasets it composes or downloads, everything under
results/, and its weights records, each a pattern written once: rules name a pattern as their
output, the plan `.format()`s it. Patterns without a suffix are jobs that write several files (or
folders). Not here: each rule's log under logs/ (named in the rule beside its output), and the
`root:` of a dataset section in config/config.yaml, which names COMPOSED's or DOWNLOADED's folder
for the demo and MM-IMDb (or a copy of the user's own)."""

from __future__ import annotations

COMPOSED = "resources/composed/{dataset}"  # the demo composer's MM-IMDb-format folder: split.json, cues.csv
DOWNLOADED = "resources/{dataset}"  # the MM-IMDb archive mmimdb.tar.gz, unpacked beside it into mmimdb/
MANIFEST = "results/{dataset}/manifest.csv"
STORE = "results/{dataset}/features/{feature}.h5"
SHARD = "results/{dataset}/features/shards/{feature}/{shard}.h5"
WEIGHTS_READY = "resources/weights/ready/{weights}.json"  # {weights}: Plan.weights_key
CELL_DIR = "results/{dataset}/runs/{combination}/{pool}"  # one training job: a run folder per seed(-fold)
RUN_DIR = CELL_DIR + "/{run}"
TABLE = "results/{dataset}_table"  # .csv, .md and .html
COMPARISONS = "results/{dataset}_comparisons"  # .csv, .md and .html
ROBUSTNESS = "results/{dataset}_robustness"  # .csv, .md, .html, .png, _views.csv; _scores.csv, _removal.h5
STORES = "results/{dataset}_stores"  # .csv, .md and .html: each store's model, weights, substitute
IMPORTANCE_FIGURE = "results/{dataset}/figures/importance_{combination}.png"
MATRICES = "results/{dataset}/figures/matrices"
GALLERY = "results/{dataset}/gallery"
PREDICTIONS = "results/{dataset}/predictions"  # .csv and .h5


def run_name(seed: int, fold: int | None = None) -> str:
    """The `run` wildcard: `seedS`, or `seedS-foldK` for one fold of a cross-validated dataset."""
    return f"seed{seed}" if fold is None else f"seed{seed}-fold{fold}"


def parse_run(run: str) -> tuple[int, int | None]:
    """`seedS` or `seedS-foldK` (the `run` wildcard) -> (S, K or None). The one parser of it."""
    seed, _, fold = run.partition("-fold")
    return int(seed[len("seed") :]), (int(fold) if fold else None)
