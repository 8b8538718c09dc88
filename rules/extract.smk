# Feature extraction: each feature's store is extracted in shards (`shards:`) and merged.


rule fetch_weights:
    """Resolve (download where needed) every weight file of a feature before any shard runs, on
    the submitting node: cluster nodes often have no network."""
    output:
        WEIGHTS_READY,
    log:
        "logs/weights/{weights}.log",
    # as its features' shards: the costliest chain's weights first, not after the cheap stores
    priority: fetch_priority
    localrule: True
    conda:
        "../envs/extract.yaml"
    # Only what picks the weight files (extractor, backend, the entry's weight_options; the record's name):
    # another option of a feature (e.g. faces min_face_size) does not rerun this job.
    params:
        args=PLAN.weights_args,
    shell:
        "python -m extract fetch {params.args} --out {output} > {log} 2>&1"


rule extract_shard:
    """One shard of one feature store: `python -m extract EXTRACTOR ...` over part of the manifest."""
    input:
        unpack(extract_inputs),
    output:
        temp(SHARD),
    log:
        "logs/{dataset}/extract/{feature}/{shard}.log",
    priority: extract_priority
    conda:
        "../envs/extract.yaml"
    # One thread per shard: per-image work (decoding, MTCNN stages, EasyOCR's recogniser loop)
    # scales better across parallel shards; raise it with --set-threads extract_shard=N.
    threads: 1
    resources:
        gpu=gpus,
        gpu_slots=gpu_slots("extract_shard"),
        gpu_shared=gpu_shared("extract_shard"),
        mem_mb=extract_mem_mb,
        runtime=extract_runtime,
    params:
        extractor=PLAN.extractor_name,
        args=PLAN.extract_args,
        shard=shard_spec,
        device=lookup(dpath="device", within=config),
        gpu_run=gpu_run("extract_shard"),
    shell:
        "{params.gpu_run}python -m extract {params.extractor} --manifest {input.manifest} --out {output} "
        "--device {params.device} --shard {params.shard} --threads {threads} {params.args} > {log} 2>&1"


rule merge_shards:
    """Concatenate a feature's shards in manifest order into its store."""
    input:
        shard_files,
    output:
        STORE,
    log:
        "logs/{dataset}/extract/{feature}/merge.log",
    priority: extract_priority
    conda:
        "../envs/extract.yaml"
    # Not passed to the command: the shards are temporary (gone once merged), so Snakemake's params
    # trigger sees a change of the feature's extractor, backend or options only on this job, which
    # then extracts every shard again.
    params:
        extractor=PLAN.extractor_name,
        options=PLAN.model_args,
    shell:
        "python -m extract merge {input} --out {output} > {log} 2>&1"
