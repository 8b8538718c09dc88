# Datasets: compose (the bundled demo), download (MM-IMDb) or read (an MM-IMDb folder, Ads
# annotations, an own table), then one manifest per dataset.


rule compose_demo:
    """Compose the bundled demo dataset in MM-IMDb's on-disk format (deterministic for the seed)."""
    output:
        split=f"{COMPOSED}/split.json",
        cues=f"{COMPOSED}/cues.csv",
    log:
        "logs/{dataset}/compose.log",
    conda:
        "../envs/data.yaml"
    params:
        root=COMPOSED,
        n=lookup(dpath="datasets/{dataset}/compose/n", within=config),
        seed=lookup(dpath="datasets/{dataset}/compose/seed", within=config),
    shell:
        "python -m data.demo --out {params.root} --n {params.n} --seed {params.seed} > {log} 2>&1"


rule download_mmimdb:
    """Fetch mmimdb.tar.gz (resumable, verified) and unpack it beside the archive, into mmimdb/."""
    output:
        f"{DOWNLOADED}/mmimdb/split.json",
    log:
        "logs/{dataset}/download.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        args=PLAN.download_args,
        archive=f"{DOWNLOADED}/mmimdb.tar.gz",
        dest=DOWNLOADED,
    shell:
        "python -m data download {params.args} --out {params.archive} --unpack {params.dest} > {log} 2>&1"


rule manifest:
    """One row per sample: id, split (or fold), image, text, labels (docs/DESIGN.md, "Manifest")."""
    input:
        source=PLAN.manifest_source,
    output:
        MANIFEST,
    log:
        "logs/{dataset}/manifest.log",
    conda:
        "../envs/data.yaml"
    params:
        args=PLAN.manifest_args,
    shell:
        "python -m data manifest {params.args} --out {output} > {log} 2>&1"
