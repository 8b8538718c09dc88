# Tables and figures from the run folders.


rule table:
    """The dataset's table: every combination x pool and concat baseline, mean and std over seeds."""
    input:
        runs=lambda w: PLAN.grid_cells(w.dataset),
        # not read: in the table's DAG so that a report of the table shows where its features came from
        stores=f"{STORES}.csv",
    output:
        csv=report(
            f"{TABLE}.csv",
            caption="captions/table.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "table": "results", "format": "csv"},
        ),
        md=f"{TABLE}.md",
        html=report(
            f"{TABLE}.html",
            caption="captions/table.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "table": "results", "format": "table"},
        ),
    log:
        "logs/{dataset}/table.log",
    conda:
        "../envs/train.yaml"
    params:
        runs=PLAN.run_folders,
        labels=PLAN.label_args,
        command=PLAN.table_command,
    shell:
        "python -m report {params.command} --runs {params.runs} --out {output.csv} {params.labels} "
        "> {log} 2>&1"


rule stores:
    """Where the features came from: each store's model, weight files with their sha256 and what
    differs from the paper's model (attrs only)."""
    input:
        stores=PLAN.grid_stores,
    output:
        csv=f"{STORES}.csv",
        md=f"{STORES}.md",
        html=report(
            f"{STORES}.html",
            caption="captions/stores.rst",
            category="Tables",
            labels={
                "dataset": "{dataset}",
                "table": "feature stores",
                "format": "table",
            },
        ),
    log:
        "logs/{dataset}/stores.log",
    conda:
        "../envs/train.yaml"
    params:
        stores=PLAN.store_args,
    shell:
        "python -m report stores {params.stores} --out {output.csv} > {log} 2>&1"


rule importance_figure:
    """Mean feature importance per modality (max pooling) of one combination, beside the mean
    removal effect (from the robustness job)."""
    input:
        runs=lambda w: PLAN.grid_cells(w.dataset, [w.combination], "max"),
        removal=f"{ROBUSTNESS}_removal.h5",
    output:
        report(
            IMPORTANCE_FIGURE,
            caption="captions/importance.rst",
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
        "python -m report figure --runs {params.runs} --out {output} --removal {input.removal} "
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
            caption="captions/matrices.rst",
            category="Feature importance",
            labels={"dataset": "{dataset}", "figure": "overview"},
        ),
        samples=report(
            f"{MATRICES}/samples.png",
            caption="captions/matrices.rst",
            category="Feature importance",
            labels={"dataset": "{dataset}", "figure": "samples"},
        ),
        cells=f"{MATRICES}/matrices.csv",
    log:
        "logs/{dataset}/figures/matrices.log",
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=report_mem_mb,
    params:
        runs=PLAN.run_folders,
        labels=PLAN.label_args,
        samples=lookup(
            dpath="datasets/{dataset}/experiments/importance_samples", within=config
        ),
        out=MATRICES,
    shell:
        "python -m report matrices --runs {params.runs} --out-dir {params.out} "
        "--samples {params.samples} {params.labels} > {log} 2>&1"


rule robustness_scores:
    """Missing-modality robustness, the costly part: every multi-feature run scored on its test
    split with each modality removed in turn and with one modality kept, and the removal effect
    per test sample and modality (the second view of importance). No labels: changing
    `experiments.labels` does not rerun it."""
    input:
        runs=lambda w: PLAN.grid_cells(
            w.dataset, PLAN.multi_feature_combinations(w.dataset)
        ),
    output:
        scores=f"{ROBUSTNESS}_scores.csv",
        removal=f"{ROBUSTNESS}_removal.h5",
    log:
        "logs/{dataset}/robustness_scores.log",
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=report_mem_mb,
    params:
        runs=PLAN.run_folders,
        out=f"{ROBUSTNESS}.csv",
    shell:
        "python -m report robustness-scores --runs {params.runs} --out {params.out} > {log} 2>&1"


rule robustness:
    """The robustness table and heat map with the features' labels, and the two views of
    importance (mean importance share beside the mean removal effect), from the scores.
    """
    input:
        scores=f"{ROBUSTNESS}_scores.csv",
        removal=f"{ROBUSTNESS}_removal.h5",
    output:
        csv=report(
            f"{ROBUSTNESS}.csv",
            caption="captions/robustness.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "table": "robustness", "format": "csv"},
        ),
        md=f"{ROBUSTNESS}.md",
        html=report(
            f"{ROBUSTNESS}.html",
            caption="captions/robustness.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "table": "robustness", "format": "table"},
        ),
        views=report(
            f"{ROBUSTNESS}_views.csv",
            caption="captions/views.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "table": "two views", "format": "csv"},
        ),
        png=report(
            f"{ROBUSTNESS}.png",
            caption="captions/robustness.rst",
            category="Robustness",
            labels={
                "dataset": "{dataset}",
                "table": "robustness",
                "format": "heatmap",
            },
        ),
    log:
        "logs/{dataset}/robustness.log",
    conda:
        "../envs/train.yaml"
    params:
        labels=PLAN.label_args,
    shell:
        "python -m report robustness --scored --out {output.csv} {params.labels} > {log} 2>&1"


rule gallery:
    """A static page of test samples: poster with detections, plot, labels vs predictions, and
    the importance matrix (config `importance_samples` plus the most confident errors).
    """
    input:
        unpack(PLAN.gallery_inputs),
    output:
        index=f"{GALLERY}/index.html",
        standalone=report(
            f"{GALLERY}/standalone.html",
            caption="captions/gallery.rst",
            category="Gallery",
            labels={"dataset": "{dataset}", "page": "gallery"},
        ),
    log:
        "logs/{dataset}/gallery.log",
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=report_mem_mb,
    params:
        runs=PLAN.run_folders,
        stores=PLAN.gallery_stores,
        labels=PLAN.label_args,
        samples=lookup(
            dpath="datasets/{dataset}/experiments/importance_samples", within=config
        ),
        out=GALLERY,
    shell:
        "python -m report gallery --manifest {input.manifest} --runs {params.runs} {params.stores} "
        "--removal {input.removal} --samples {params.samples} --out-dir {params.out} {params.labels} "
        "> {log} 2>&1"


rule comparisons:
    """Every multi-feature row against its best single-feature row and both concat baselines, set
    rows against set per modality and against their collapsed twins: deltas with 95% intervals and
    p-values of a two-level bootstrap over seeds and test samples (report/comparisons.py).
    """
    input:
        runs=lambda w: PLAN.grid_cells(w.dataset),
    output:
        csv=report(
            f"{COMPARISONS}.csv",
            caption="captions/comparisons.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "table": "comparisons", "format": "csv"},
        ),
        md=f"{COMPARISONS}.md",
        html=report(
            f"{COMPARISONS}.html",
            caption="captions/comparisons.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "table": "comparisons", "format": "table"},
        ),
    log:
        "logs/{dataset}/comparisons.log",
    conda:
        "../envs/train.yaml"
    params:
        runs=PLAN.run_folders,
        labels=PLAN.label_args,
    shell:
        "python -m report comparisons --runs {params.runs} --out {output.csv} {params.labels} "
        "> {log} 2>&1"
