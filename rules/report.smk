# Tables and figures from the run folders.


rule table:
    """The dataset's table: every combination x pool (+ concat baseline), mean and std over seeds."""
    input:
        runs=run_metrics,
    output:
        csv=report(
            "results/{dataset}_table.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "format": "csv"},
        ),
        md="results/{dataset}_table.md",
    log:
        "logs/{dataset}/table.log",
    conda:
        "../envs/train.yaml"
    params:
        runs=table_runs,
        labels=label_args,
        command=table_command,
    shell:
        "python -m model {params.command} --runs {params.runs} --out {output.csv} {params.labels} "
        "> {log} 2>&1"


rule importance_figure:
    """Mean feature importance per modality (max pooling) of one combination, beside the mean
    removal effect (from the robustness job)."""
    input:
        runs=importance_runs,
        removal="results/{dataset}_robustness_removal.h5",
    output:
        report(
            "results/{dataset}/figures/importance_{combination}.png",
            caption="../report/importance.rst",
            category="Feature importance",
            labels={"dataset": "{dataset}", "combination": "{combination}"},
        ),
    log:
        "logs/{dataset}/figures/importance_{combination}.log",
    conda:
        "../envs/train.yaml"
    params:
        runs=lambda wildcards, input: run_dir_of(input.runs),
        labels=label_args,
    shell:
        "python -m model figure --runs {params.runs} --out {output} --removal {input.removal} "
        "{params.labels} > {log} 2>&1"


rule importance_matrices:
    """The paper's Figures 2/3: per test sample, importance of each modality (columns) in each
    max-pooling feature combination (rows), with predicted and true labels; plus an overview.
    """
    input:
        max_pool_runs,
    output:
        overview=report(
            "results/{dataset}/figures/matrices/overview.png",
            caption="../report/matrices.rst",
            category="Feature importance",
            labels={"dataset": "{dataset}", "figure": "overview"},
        ),
        samples=report(
            "results/{dataset}/figures/matrices/samples.png",
            caption="../report/matrices.rst",
            category="Feature importance",
            labels={"dataset": "{dataset}", "figure": "samples"},
        ),
        cells="results/{dataset}/figures/matrices/matrices.csv",
    log:
        "logs/{dataset}/figures/matrices.log",
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=model_mem_mb,
    params:
        runs=figure_runs,
        labels=label_args,
        samples=lookup(
            dpath="datasets/{dataset}/experiments/importance_samples", within=config
        ),
        out="results/{dataset}/figures/matrices",
    shell:
        "python -m model matrices --runs {params.runs} --out-dir {params.out} "
        "--samples {params.samples} {params.labels} > {log} 2>&1"


rule robustness:
    """Missing-modality robustness: every multi-feature run scored on its test split with each
    modality removed in turn and with one modality kept, beside the intact score; and the
    removal effect per test sample and modality (the second view of importance)."""
    input:
        robustness_runs,
    output:
        csv=report(
            "results/{dataset}_robustness.csv",
            caption="../report/robustness.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "format": "csv"},
        ),
        md="results/{dataset}_robustness.md",
        removal="results/{dataset}_robustness_removal.h5",
        views="results/{dataset}_robustness_views.csv",
        png=report(
            "results/{dataset}_robustness.png",
            caption="../report/robustness.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "format": "heatmap"},
        ),
    log:
        "logs/{dataset}/robustness.log",
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=model_mem_mb,
    params:
        runs=figure_runs,
        labels=label_args,
    shell:
        "python -m model robustness --runs {params.runs} --out {output.csv} {params.labels} "
        "> {log} 2>&1"


rule gallery:
    """A static page of test samples: poster with detections, plot, labels vs predictions, and
    the importance matrix (config `importance_samples` plus the most confident errors).
    """
    input:
        unpack(gallery_inputs),
    output:
        "results/{dataset}/gallery/index.html",
    log:
        "logs/{dataset}/gallery.log",
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=model_mem_mb,
    params:
        runs=lambda wildcards, input: run_dir_of(input.runs),
        stores=gallery_stores,
        labels=label_args,
        samples=lookup(
            dpath="datasets/{dataset}/experiments/importance_samples", within=config
        ),
        out="results/{dataset}/gallery",
    shell:
        "python -m model gallery --manifest {input.manifest} --runs {params.runs} {params.stores} "
        "--removal {input.removal} --samples {params.samples} --out-dir {params.out} {params.labels} "
        "> {log} 2>&1"


rule comparisons:
    """Every multi-feature row against its best single-feature row and against concat, and set
    rows against their collapsed twins: deltas with paired bootstrap CIs and permutation p-values.
    """
    input:
        runs=run_metrics,
    output:
        csv=report(
            "results/{dataset}_comparisons.csv",
            caption="../report/comparisons.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "format": "comparisons"},
        ),
        md="results/{dataset}_comparisons.md",
    log:
        "logs/{dataset}/comparisons.log",
    conda:
        "../envs/train.yaml"
    params:
        runs=table_runs,
        labels=label_args,
    shell:
        "python -m model comparisons --runs {params.runs} --out {output.csv} {params.labels} "
        "> {log} 2>&1"
