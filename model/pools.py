"""The pools a run can use: the one list the schema, the rules' wildcard, the CLI and the models
read (tests pin config/schema.yaml's enums to it). Torch-free, so Snakemake can import it.

A pool name is also the run's folder (`runs/{combination}/{pool}/`) and decides its table row:

| pools | Method | model |
|---|---|---|
| `max`, `min`, `sum`, `mean`, `attention` | `set` | the paper's joint pooling: every element of every modality in one set, one pool (model/sets.py) |
| `max_per_modality`, ... (not `mean`) | `set per modality` | each modality's set pooled on its own by the same pool, the M vectors concatenated (model/baseline.py) |
| `concat_mean` | `concat mean` | per modality the mean of its encoded rows, concatenated (a mean per modality) |
| `concat_padded` | `concat padded` | the paper's Sec. 3.1 baseline: every occurrence concatenated, zero-padded to a cap per modality |
"""

REDUCTIONS = ("max", "min", "sum", "mean")  # set_pool reductions (the paper's, plus mean)
SET_POOLS = REDUCTIONS + ("attention",)  # what SetModel accepts; attention is our learned addition
PER_MODALITY = "_per_modality"  # suffix: that pool applied to each modality's set on its own
# mean per modality is `concat_mean`, so it has no per-modality name of its own
MODALITY_POOLS = tuple(p + PER_MODALITY for p in SET_POOLS if p != "mean")
CONCAT_MEAN, CONCAT_PADDED = "concat_mean", "concat_padded"
BASELINES = (CONCAT_MEAN, CONCAT_PADDED)  # late-fusion baselines (model/baseline.py)
GRID_POOLS = SET_POOLS + MODALITY_POOLS  # what a combination's `pools:` may list (config/schema.yaml)
ALL_POOLS = GRID_POOLS + BASELINES
METHODS = ("set", "set per modality", "concat mean", "concat padded")  # the tables' Method values
RENAMED = {"concat": "the pool `concat` was renamed: `concat_mean` is that model (per modality the mean of "
                     "its encoded rows, concatenated); `concat_padded` is the paper's Sec. 3.1 baseline "
                     "(every occurrence concatenated, zero-padded); retrain old concat runs under one of them"}


def wildcard() -> str:
    """Regex for the `{pool}` wildcard of run folders: any of ALL_POOLS."""
    return "|".join(ALL_POOLS)


def check_pool(pool: str) -> str:
    if pool in RENAMED:
        raise ValueError(f"pool {pool}: {RENAMED[pool]}")
    if pool not in ALL_POOLS:
        raise ValueError(f"pool {pool}: choose one of {', '.join(ALL_POOLS)}")
    return pool


def method(pool: str) -> str:
    """The table's Method of a run trained with `pool`."""
    pool = check_pool(pool)
    if pool in BASELINES:
        return pool.replace("_", " ")
    return "set per modality" if pool.endswith(PER_MODALITY) else "set"


def reduction(pool: str) -> str:
    """The table's Pool: the set pool inside (`max_per_modality` -> `max`, `concat_mean` -> `mean`;
    `concat_padded` pools nothing: `-`)."""
    pool = check_pool(pool)
    if pool == CONCAT_PADDED:
        return "-"
    return "mean" if pool == CONCAT_MEAN else pool.removesuffix(PER_MODALITY)


def label(pool: str) -> str:
    """How comparisons and figures name the pool: `max`, `max per modality`, `concat mean`."""
    return check_pool(pool).replace("_", " ")
