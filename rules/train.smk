# Training: one job per grid cell (combination, pool): it trains the cell's seeds (and folds) one
# after another in one process and writes a run folder for each (model/options.py names the pools).


rule train:
    """Train and evaluate every run of one cell; test metrics are taken at the best dev epoch."""
    input:
        unpack(PLAN.train_inputs),
    output:
        directory(CELL_DIR),
    log:
        "logs/{dataset}/train/{combination}/{pool}.log",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        gpu=gpus,
        gpu_slots=gpu_slots("train"),
        gpu_shared=gpu_shared("train"),
        mem_mb=model_mem_mb,
        runtime=train_runtime,
    params:
        features=PLAN.train_features,
        options=PLAN.train_args,
        runs=PLAN.train_runs,
        device=lookup(dpath="device", within=config),
        gpu_run=gpu_run("train"),
    shell:
        "{params.gpu_run}python -m model train --manifest {input.manifest} {params.features} --pool {wildcards.pool} "
        "{params.runs} --device {params.device} --threads {threads} {params.options} "
        "> {log} 2>&1"
