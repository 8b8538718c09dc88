"""The pools a run can use: the one list the schema, the rules' wildcard, the CLI and the models
read (tests pin config/schema.yaml's enums to it). Torch-free, so Snakemake can import it."""

REDUCTIONS = ("max", "min", "sum", "mean")  # set_pool reductions (the paper's, plus mean)
SET_POOLS = REDUCTIONS + ("attention",)  # what SetModel accepts; attention is our learned addition
BASELINE = "concat"  # late-fusion baseline (model/baseline.py)
ALL_POOLS = SET_POOLS + (BASELINE,)


def wildcard() -> str:
    """Regex for the `{pool}` wildcard of run folders: any of ALL_POOLS."""
    return "|".join(ALL_POOLS)


def check_pool(pool: str) -> str:
    if pool not in ALL_POOLS:
        raise ValueError(f"--pool {pool}: choose one of {', '.join(ALL_POOLS)}")
    return pool
