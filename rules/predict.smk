# Predictions of a trained run on a dataset with `predict: {model: DATASET/COMBINATION/POOL/RUN}`.


rule predict:
    """Score every sample of the dataset's manifest with the trained run (labels may be empty)."""
    input:
        unpack(PLAN.predict_inputs),
    output:
        csv=f"{PREDICTIONS}.csv",
        h5=f"{PREDICTIONS}.h5",
    log:
        "logs/{dataset}/predict.log",
    conda:
        "../envs/train.yaml"
    resources:
        gpu=gpus,
        gpu_slots=gpu_slots("predict"),
        gpu_shared=gpu_shared("predict"),
        mem_mb=model_mem_mb,
        runtime=predict_runtime,
    params:
        args=PLAN.predict_args,
        device=lookup(dpath="device", within=config),
        out=PREDICTIONS,
        gpu_run=gpu_run("predict"),
    shell:
        "{params.gpu_run}python -m model predict --manifest {input.manifest} {params.args} --out {params.out} "
        "--device {params.device} > {log} 2>&1"
