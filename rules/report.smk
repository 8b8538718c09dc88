# Tables and figures from the run folders.


rule table:
    """The dataset's table: every combination x pool (+ concat baseline), mean and std over seeds."""
    input:
        runs=lambda w: PLAN.grid_cells(w.dataset),
    output:
        csv=report(
            f"{TABLE}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "format": "csv"},
        ),
        md=f"{TABLE}.md",
    log:
        "logs/{dataset}/table.log",
    conda:
        "../envs/train.yaml"
    params:
        runs=PLAN.run_folders,
        labels=PLAN.label_args,
        command=PLAN.table_command,
    shell:
        "python -m model {params.command} --runs {params.runs} --out {output.csv} {params.labels} "
        "> {log} 2>&1"


rule importance_figure:
    """Mean feature importance per modality (max pooling) of one combination, beside the mean
    removal effect (from the robustness job)."""
    input:
        runs=lambda w: PLAN.grid_cells(w.dataset, [w.combination], "max"),
        removal=f"{ROBUSTNESS}_removal.h5",
    output:
        report(
            IMPORTANCE_FIGURE,
            caption="../report/importance.rst",
            category="Feature importance",
            labels={"dataset": "{dataset}", "combination": "{combination}"},
        ),
    log:
        "logs/{dataset}/figures/importance_{combination}.log",
    conda:
        "../envs/train.yaml"
    params:
        runs=PLAN.run_folders,
        labels=PLAN.label_args,
    shell:
        "python -m model figure --runs {params.runs} --out {output} --removal {input.removal} "
        "{params.labels} > {log} 2>&1"


rule importance_matrices:
    """The paper's Figures 2/3: per test sample, importance of each modality (columns) in each
    max-pooling feature combination (rows), with predicted and true labels; plus an overview.
    """
    input:
        runs=lambda w: PLAN.grid_cells(w.dataset, pool="max"),
    output:
        overview=report(
            f"{MATRICES}/overview.png",
            caption="../report/matrices.rst",
            category="Feature importance",
            labels={"dataset": "{dataset}", "figure": "overview"},
        ),
        samples=report(
            f"{MATRICES}/samples.png",
            caption="../report/matrices.rst",
            category="Feature importance",
            labels={"dataset": "{dataset}", "figure": "samples"},
        ),
        cells=f"{MATRICES}/matrices.csv",
    log:
        "logs/{dataset}/figures/matrices.log",
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=model_mem_mb,
    params:
        runs=PLAN.run_folders,
        labels=PLAN.label_args,
        samples=lookup(
            dpath="datasets/{dataset}/experiments/importance_samples", within=config
        ),
        out=MATRICES,
    shell:
        "python -m model matrices --runs {params.runs} --out-dir {params.out} "
        "--samples {params.samples} {params.labels} > {log} 2>&1"


rule robustness:
    """Missing-modality robustness: every multi-feature run scored on its test split with each
    modality removed in turn and with one modality kept, beside the intact score; and the
    removal effect per test sample and modality (the second view of importance)."""
    input:
        runs=lambda w: PLAN.grid_cells(
            w.dataset, PLAN.multi_feature_combinations(w.dataset)
        ),
    output:
        csv=report(
            f"{ROBUSTNESS}.csv",
            caption="../report/robustness.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "format": "csv"},
        ),
        md=f"{ROBUSTNESS}.md",
        removal=f"{ROBUSTNESS}_removal.h5",
        views=f"{ROBUSTNESS}_views.csv",
        png=report(
            f"{ROBUSTNESS}.png",
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
        runs=PLAN.run_folders,
        labels=PLAN.label_args,
    shell:
        "python -m model robustness --runs {params.runs} --out {output.csv} {params.labels} "
        "> {log} 2>&1"


rule gallery:
    """A static page of test samples: poster with detections, plot, labels vs predictions, and
    the importance matrix (config `importance_samples` plus the most confident errors).
    """
    input:
        unpack(PLAN.gallery_inputs),
    output:
        f"{GALLERY}/index.html",
    log:
        "logs/{dataset}/gallery.log",
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=model_mem_mb,
    params:
        runs=PLAN.run_folders,
        stores=PLAN.gallery_stores,
        labels=PLAN.label_args,
        samples=lookup(
            dpath="datasets/{dataset}/experiments/importance_samples", within=config
        ),
        out=GALLERY,
    shell:
        "python -m model gallery --manifest {input.manifest} --runs {params.runs} {params.stores} "
        "--removal {input.removal} --samples {params.samples} --out-dir {params.out} {params.labels} "
        "> {log} 2>&1"


rule comparisons:
    """Every multi-feature row against its best single-feature row and against concat, and set
    rows against their collapsed twins: deltas with paired bootstrap CIs and permutation p-values.
    """
    input:
        runs=lambda w: PLAN.grid_cells(w.dataset),
    output:
        csv=report(
            f"{COMPARISONS}.csv",
            caption="../report/comparisons.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "format": "comparisons"},
        ),
        md=f"{COMPARISONS}.md",
    log:
        "logs/{dataset}/comparisons.log",
    conda:
        "../envs/train.yaml"
    params:
        runs=PLAN.run_folders,
        labels=PLAN.label_args,
    shell:
        "python -m model comparisons --runs {params.runs} --out {output.csv} {params.labels} "
        "> {log} 2>&1"
