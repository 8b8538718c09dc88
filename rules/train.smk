# Training: one job per (combination, pool, seed); `concat` is the late-fusion baseline.


rule train:
    """Train and evaluate one run; test metrics are taken at the best dev epoch."""
    input:
        unpack(train_inputs),
    output:
        metrics="results/{dataset}/runs/{combination}/{pool}/seed{seed}/metrics.json",
        history="results/{dataset}/runs/{combination}/{pool}/seed{seed}/history.csv",
        predictions="results/{dataset}/runs/{combination}/{pool}/seed{seed}/predictions.h5",
        model="results/{dataset}/runs/{combination}/{pool}/seed{seed}/model.pt",
    log:
        "logs/{dataset}/train/{combination}/{pool}/seed{seed}.log",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        gpu=gpus,
    params:
        features=feature_args,
        options=train_args,
        device=device(),
        out="results/{dataset}/runs/{combination}/{pool}/seed{seed}",
    shell:
        "python -m model train --manifest {input.manifest} {params.features} --pool {wildcards.pool} "
        "--seed {wildcards.seed} --out {params.out} --device {params.device} --threads {threads} "
        "{params.options} "
        "> {log} 2>&1"
