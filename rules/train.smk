# Training: one job per (combination, pool, seed); `concat` is the late-fusion baseline.


rule train:
    """Train and evaluate one run; test metrics are taken at the best dev epoch."""
    input:
        unpack(PLAN.train_inputs),
    output:
        metrics=f"{RUN_DIR}/metrics.json",
        history=f"{RUN_DIR}/history.csv",
        predictions=f"{RUN_DIR}/predictions.h5",
        importance=f"{RUN_DIR}/importance.h5",
        model=f"{RUN_DIR}/model.pt",
    log:
        "logs/{dataset}/train/{combination}/{pool}/{run}.log",
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
        device=lookup(dpath="device", within=config),
        seed=PLAN.run_seed,
        out=RUN_DIR,
        gpu_run=gpu_run("train"),
    shell:
        "{params.gpu_run}python -m model train --manifest {input.manifest} {params.features} --pool {wildcards.pool} "
        "--seed {params.seed} --out {params.out} --device {params.device} --threads {threads} "
        "{params.options} "
        "> {log} 2>&1"
