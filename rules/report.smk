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
    """Mean feature importance per modality (max pooling) of one combination."""
    input:
        importance_runs,
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
        runs=figure_runs,
        labels=label_args,
    shell:
        "python -m model figure --runs {params.runs} --out {output} {params.labels} > {log} 2>&1"


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
    params:
        runs=figure_runs,
        labels=label_args,
        samples=matrices_samples,
        out="results/{dataset}/figures/matrices",
    shell:
        "python -m model matrices --runs {params.runs} --out-dir {params.out} "
        "--samples {params.samples} {params.labels} > {log} 2>&1"
