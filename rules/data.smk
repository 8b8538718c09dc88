# Datasets: compose (the bundled demo) or find them, then one manifest per dataset.


rule compose_demo:
    """Compose the bundled demo dataset in MM-IMDb's on-disk format (deterministic for the seed)."""
    output:
        split="resources/composed/{dataset}/split.json",
        cues="resources/composed/{dataset}/cues.csv",
    log:
        "logs/{dataset}/compose.log",
    conda:
        "../envs/data.yaml"
    params:
        root="resources/composed/{dataset}",
        n=compose_n,
        seed=compose_seed,
    shell:
        "python -m data.demo --out {params.root} --n {params.n} --seed {params.seed} > {log} 2>&1"


rule manifest:
    """One row per sample: id, split, image, text, labels (DESIGN.md contract)."""
    input:
        split=split_file,
    output:
        "results/{dataset}/manifest.csv",
    log:
        "logs/{dataset}/manifest.log",
    conda:
        "../envs/data.yaml"
    params:
        root=dataset_root,
        genres=genres_arg,
    shell:
        "python -m data manifest --root {params.root} --out {output} {params.genres} > {log} 2>&1"
