"""What the workflow runs for a validated config: the training grid, the features each dataset
extracts, the default targets, and each rule's inputs and command-line arguments.

`Plan(config, sources)` is built once by rules/common.smk after `validate` filled every default,
so keys are read without fallbacks; `sources` names the loaded config files for error messages.
Methods taking `wildcards` are the rules' input and params functions (Snakemake passes
`wildcards`, `input` by parameter name). Importable without torch: Snakemake calls it while it
builds the DAG, and tests call it with plain dicts.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from core.manifest import ADS_FOLDS
from extract.catalog import entry
from model.options import BASELINES, PER_MODALITY, RENAMED, TrainOptions
from pipeline.paths import (CELL_DIR, COMPARISONS, GALLERY, IMPORTANCE_FIGURE, MANIFEST, MATRICES, PREDICTIONS,
                            ROBUSTNESS, RUN_DIR, STORE, STORES, TABLE, WEIGHTS_READY, parse_run, run_name)


def quoted(args: Iterable[Any]) -> str:
    return " ".join(shlex.quote(str(a)) for a in args)


def set_args(options: dict[str, Any], flag: str = "--set") -> str:
    """`FLAG KEY=VALUE` for each option, in key order; booleans as YAML writes them (`true`)."""
    return quoted(a for k, v in sorted(options.items())
                  for a in (flag, f"{k}={json.dumps(v) if isinstance(v, bool) else v}"))


def check_renamed(config: dict[str, Any]) -> None:
    """Refuse a renamed pool (`concat`) in a config's `pools` or `baseline` lists before the
    schema does, naming what it is now (model/options.py RENAMED)."""
    for dataset, section in (config.get("datasets") or {}).items():
        experiments = (section or {}).get("experiments") or {}
        lists = [("pools", experiments.get("pools"))] + [
            (f"combinations.{name}.{key}", (combo or {}).get(key))
            for name, combo in (experiments.get("combinations") or {}).items() for key in ("pools", "baseline")]
        for where, values in lists:
            old = sorted(set(values) & set(RENAMED)) if isinstance(values, list) else []
            if old:
                raise ValueError(f"datasets.{dataset}.experiments.{where}: {RENAMED[old[0]]}; list them under "
                                 "`baseline:` (e.g. baseline: [concat_mean, concat_padded])")


def combination_pools(experiments: dict[str, Any], name: str) -> list[str]:
    """The pools of one combination of an `experiments` section (its `pools`, else the section's),
    then its late-fusion baselines: `baseline` lists them (true: both, false: none; default: both
    when the combination has several features)."""
    combo = experiments["combinations"][name]
    pools = list(combo.get("pools") or experiments["pools"])
    several = len(combo["features"]) > 1
    alone = [p for p in pools if p.endswith(PER_MODALITY)]
    if alone and not several:
        raise ValueError(f"combination {name!r} has one feature: {alone[0]} would pool it exactly as "
                         f"{alone[0].removesuffix(PER_MODALITY)}; give per-modality pools to combinations of "
                         "several features (their own `pools:`)")
    baseline = combo.get("baseline", several)
    baseline = list(BASELINES) if baseline is True else [] if baseline is False else baseline
    return pools + list(dict.fromkeys(baseline))


@dataclass(frozen=True)
class ModelRun:
    """The trained run a `predict:` dataset predicts with: its `predict.model`,
    DATASET/COMBINATION/POOL/RUN, a cell of that dataset's grid."""

    dataset: str
    combination: str
    pool: str
    run: str


class Plan:
    def __init__(self, config: dict[str, Any], sources: str) -> None:
        self.datasets = config["datasets"]
        self.targets = config["targets"]
        self.sources = sources
        self._strict_checked: set[str] = set()

    # --- the training grid ---------------------------------------------------------------------

    def experiments(self, dataset: str) -> dict[str, Any]:
        return self.datasets[dataset]["experiments"]

    def combination_pools(self, dataset: str, name: str) -> list[str]:
        return combination_pools(self.experiments(dataset), name)

    def run_names(self, dataset: str) -> list[str]:
        """seedS, or seedS-foldK for every fold of a cross-validated dataset."""
        seeds, folds = self.experiments(dataset)["seeds"], self.folds(dataset)
        if not folds:
            return [run_name(s) for s in seeds]
        return [run_name(s, k) for s in seeds for k in range(folds)]

    def grid(self, dataset: str, combinations=None, pool: str | None = None) -> list[tuple[str, str, str]]:
        """(combination, pool, run) of every cell of a dataset's training grid, in table order;
        `combinations` and `pool` narrow it."""
        if combinations is None:
            combinations = self.experiments(dataset)["combinations"]
        return [
            (name, p, run)
            for name in combinations
            for p in self.combination_pools(dataset, name)
            if pool in (None, p)
            for run in self.run_names(dataset)
        ]

    def grid_cells(self, dataset: str, combinations=None, pool: str | None = None) -> list[str]:
        """The cell folders (one training job each, holding a run folder per run name) of
        grid(dataset, combinations, pool), in table order: a report job's inputs."""
        cells = dict.fromkeys((c, p) for c, p, _ in self.grid(dataset, combinations, pool))
        return [CELL_DIR.format(dataset=dataset, combination=c, pool=p) for c, p in cells]

    def combinations_where(self, dataset: str, test: Callable[[dict], Any]) -> list[str]:
        return [n for n, c in self.experiments(dataset)["combinations"].items() if test(c)]

    def multi_feature_combinations(self, dataset: str) -> list[str]:
        return self.combinations_where(dataset, lambda combo: len(combo["features"]) > 1)

    def combination_features(self, wildcards) -> list[str]:
        combos = self.experiments(wildcards.dataset)["combinations"]
        if wildcards.combination not in combos:
            raise ValueError(
                f"dataset {wildcards.dataset!r} has no combination {wildcards.combination!r} in {self.sources}"
            )
        return combos[wildcards.combination]["features"]

    # --- features --------------------------------------------------------------------------------

    def predict_model(self, dataset: str) -> ModelRun | None:
        """The run a `predict:` dataset predicts with, else None. The run must
        be a cell of the model dataset's grid (one the workflow trains), so a typo is refused while
        the DAG is built instead of training a run nobody configured."""
        spec = self.datasets[dataset].get("predict")
        if not spec:
            return None
        # four parts: the schema checks the form
        model_ds, combination, pool, run = spec["model"].split("/")
        if model_ds not in self.datasets or self.datasets[model_ds].get("predict"):
            trained = [d for d in self.datasets if not self.datasets[d].get("predict")]
            raise ValueError(
                f"dataset {dataset!r}: predict.model {spec['model']!r} names no trained dataset "
                f"{model_ds!r} in {self.sources}; configured: {', '.join(trained) or 'none'}"
            )
        runs = ["/".join((model_ds,) + cell) for cell in self.grid(model_ds)]
        if spec["model"] not in runs:
            raise ValueError(
                f"dataset {dataset!r}: predict.model {spec['model']!r} is not a run of the grid of "
                f"{model_ds!r} in {self.sources}; configured runs: {', '.join(runs) or 'none'}"
            )
        return ModelRun(model_ds, combination, pool, run)

    def dataset_features(self, dataset: str) -> dict[str, dict[str, Any]]:
        """Feature name -> extraction settings. A `predict:` dataset is extracted with the model
        dataset's settings, for the features of the model's combination (and the ones they read)."""
        model = self.predict_model(dataset)
        if model is None:
            return self.datasets[dataset]["features"]
        features = self.experiments(model.dataset)["combinations"][model.combination]["features"]
        return self.with_inputs(model.dataset, features)

    def with_inputs(self, dataset: str, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Feature name -> settings of `names` of a (trained) dataset and the features they read
        (ocr for ocr_text), inputs of inputs included."""
        source = self.datasets[dataset]["features"]
        wanted = list(dict.fromkeys(names))
        for name in wanted:  # grows while it runs: inputs of inputs
            if source[name]["input"] and source[name]["input"] not in wanted:
                wanted.append(source[name]["input"])
        return {name: source[name] for name in wanted}

    def grid_stores(self, wildcards) -> list[str]:
        """The stores the dataset's grid trains on and those they were built from: what the
        `stores` provenance table lists (an input of the table, so a report of it shows them)."""
        combos = self.experiments(wildcards.dataset)["combinations"].values()
        used = self.with_inputs(wildcards.dataset, [f for combo in combos for f in combo["features"]])
        return list(self.stores(wildcards.dataset, used).values())

    @staticmethod
    def store_args(wildcards, input) -> str:
        """`--store NAME=STORE.h5` of each input store (its feature name is the file's stem)."""
        return quoted(a for path in input.stores for a in ("--store", f"{Path(path).stem}={path}"))

    def check_paper_strict(self, dataset: str) -> None:
        """`paper_strict: true`: refuse, before any job runs, a dataset whose features would run a
        model or weights other than the paper's (extract/substitutes.py says why and how to fix)."""
        if dataset in self._strict_checked or not self.datasets[dataset]["paper_strict"]:
            return
        from extract.substitutes import strict_problems

        problems = strict_problems(self.dataset_features(dataset))
        if problems:
            raise ValueError(
                f"dataset {dataset!r} has paper_strict: true, but it would not run the paper's models:\n  "
                + "\n  ".join(problems)
            )
        self._strict_checked.add(dataset)

    def feature_config(self, wildcards) -> dict[str, Any]:
        features = self.dataset_features(wildcards.dataset)
        if wildcards.feature not in features:
            raise ValueError(
                f"dataset {wildcards.dataset!r} has no feature {wildcards.feature!r} in {self.sources}; "
                f"configured: {', '.join(features) or 'none'}"
            )
        self.check_paper_strict(wildcards.dataset)
        return features[wildcards.feature]

    @staticmethod
    def stores(dataset: str, names: Iterable[str]) -> dict[str, str]:
        """{feature: its store} of one dataset."""
        return {name: STORE.format(dataset=dataset, feature=name) for name in names}

    # --- rule data.smk -----------------------------------------------------------------------------

    def folds(self, dataset: str) -> int:
        """Cross-validation folds: `folds:`, and for format ads at 0 the manifest's default
        (ADS_FOLDS: it has no split of its own)."""
        ds = self.datasets[dataset]
        return ds["folds"] or (ADS_FOLDS if ds["format"] == "ads" else 0)

    def manifest_source(self, wildcards) -> str:
        """What the manifest is built from: MM-IMDb's split.json, the Ads annotation CSV or the
        user's table."""
        ds = self.datasets[wildcards.dataset]
        key = {"ads": "annotations", "table": "table", "mmimdb": "root"}[ds["format"]]
        if key not in ds:
            raise ValueError(f"dataset {wildcards.dataset!r}: format {ds['format']} needs `{key}:`")
        return f"{ds['root']}/split.json" if key == "root" else ds[key]

    def manifest_args(self, wildcards, input) -> str:
        ds = self.datasets[wildcards.dataset]
        predict = ["--predict"] if "predict" in ds else []  # no split, no class warnings
        if ds["format"] == "ads":
            # folds: 0 leaves the manifest's own default (5 folds)
            folds = ["--folds", ds["folds"]] if ds["folds"] else []
            args = ["--format", "ads", "--annotations", input.source]
            return quoted(args + folds + ["--seed", ds["fold_seed"]] + predict)
        if ds["format"] == "table":
            ratios = ",".join(str(r) for r in ds["split"]["ratios"])
            args = ["--format", "table", "--table", input.source, "--split-ratios", ratios]
            args += ["--sep", ds["sep"]] if ds["sep"] else []
            args += ["--strict-images"] if ds["strict_images"] else []
            args += ["--allow-missing-images"] if ds["allow_missing_images"] else []
            return quoted(args + ["--split-seed", ds["split"]["seed"]] + predict)
        args = ["--format", "mmimdb", "--root", ds["root"], "--plot", ds["plot"]]
        args += ["--genres", ",".join(ds["genres"])] if ds["genres"] else []
        return quoted(args + predict)

    def download_args(self, wildcards) -> str:
        ds = self.datasets[wildcards.dataset]
        if "download" not in ds:
            raise ValueError(
                f"dataset {wildcards.dataset!r}: {ds.get('root')}/split.json does not exist and the config "
                "has no `download:` section; point `root:` at an unpacked MM-IMDb copy"
            )
        dl = ds["download"]
        args = ["--url", dl["url"]]
        args += ["--size", dl["size"]] if dl["size"] else []
        args += ["--sha256", dl["sha256"]] if dl["sha256"] else []
        return quoted(args)

    # --- rule extract.smk --------------------------------------------------------------------------

    def extract_inputs(self, wildcards) -> dict[str, str]:
        ds, feature = wildcards.dataset, wildcards.feature
        source = self.feature_config(wildcards)["input"]  # refuses an unknown feature first
        inputs = {"manifest": MANIFEST.format(dataset=ds)}
        if not entry(self.dataset_features(ds)[feature]["extractor"]).weightless:
            inputs["weights"] = self.weights_record(ds, feature)
        if source:
            inputs["store"] = STORE.format(dataset=ds, feature=source)
        return inputs

    def weights_record(self, dataset: str, feature: str) -> str:
        """The `fetch_weights` record a feature's shards wait for, named by what picks its weight
        files alone (`weights_key`): features and datasets with the same extractor, backend and
        weight options share it (the demo's three MiniLM features, a `predict:` dataset and its
        model dataset), and adding or renaming a feature changes no other feature's record."""
        return WEIGHTS_READY.format(weights=self.weights_key(self.dataset_features(dataset)[feature]))

    @staticmethod
    def weight_options(settings: dict[str, Any]) -> dict[str, Any]:
        """The options of a feature that pick weight files (its extractor's catalogue entry,
        `weight_options`)."""
        names = entry(settings["extractor"]).weight_options
        return {k: v for k, v in settings["options"].items() if k in names}

    @staticmethod
    def weights_key(settings: dict[str, Any]) -> str:
        """`EXTRACTOR-BACKEND`, plus a digest of the options that pick weight files
        (`weight_options`) when the feature sets any."""
        options = Plan.weight_options(settings)
        key = f"{settings['extractor']}-{settings['backend'] or 'default'}"
        if options:
            key += "-" + hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]
        return key

    def weights_users(self, wildcards) -> list[tuple[str, str]]:
        """(dataset, feature) of every configured feature whose record is `wildcards.weights`."""
        users = [(ds, name) for ds, section in self.datasets.items() if not section.get("predict")
                 for name, settings in section["features"].items() if self.weights_key(settings) == wildcards.weights]
        if not users:
            raise ValueError(f"no feature in {self.sources} has weights record {wildcards.weights!r}")
        return users

    def weights_args(self, wildcards) -> str:
        """`EXTRACTOR --backend B --set K=V` of a weights record: only the options that pick weight
        files, so no other option of the feature reruns `fetch_weights`."""
        dataset, feature = self.weights_users(wildcards)[0]
        # the first user's settings as configured: a fetch another dataset shares is not that
        # dataset's job, so its paper_strict check (feature_config) is not this one's to run
        settings = self.dataset_features(dataset)[feature]
        options = self.weight_options(settings)
        return quoted([settings["extractor"]]) + " " + self.option_args(settings["backend"], options)

    def extractor_name(self, wildcards) -> str:
        return self.feature_config(wildcards)["extractor"]

    def model_args(self, wildcards) -> str:
        """Backend and `--set` options of one feature."""
        feature = self.feature_config(wildcards)
        return self.option_args(feature["backend"], feature["options"])

    @staticmethod
    def option_args(backend: str | None, options: dict[str, Any]) -> str:
        return " ".join(filter(None, [quoted(["--backend", backend]) if backend else "", set_args(options)]))

    def extract_args(self, wildcards, input) -> str:
        """Model arguments, the input store, and the feature name (recorded in the store's attrs)."""
        args = self.model_args(wildcards) + f" --feature {shlex.quote(wildcards.feature)}"
        if "store" in input.keys():
            args += f" --input {shlex.quote(input.store)}"
        return args

    # --- rules train.smk and predict.smk -----------------------------------------------------------

    def train_inputs(self, wildcards) -> dict[str, str]:
        ds = wildcards.dataset
        inputs = {"manifest": MANIFEST.format(dataset=ds)}
        return inputs | self.stores(ds, self.combination_features(wildcards))

    @staticmethod
    def feature_args(names: Iterable[str], input) -> str:
        return quoted(a for n in names for a in ("--feature", f"{n}={input[n]}"))

    def train_features(self, wildcards, input) -> str:
        return self.feature_args(self.combination_features(wildcards), input)

    def train_runs(self, wildcards) -> str:
        """`--run SEED[:FOLD]=RUN_DIR` of every run of the cell: one process trains them all."""
        runs = []
        for run in self.run_names(wildcards.dataset):
            seed, fold = parse_run(run)
            folder = RUN_DIR.format(dataset=wildcards.dataset, combination=wildcards.combination,
                                    pool=wildcards.pool, run=run)
            runs += ["--run", f"{seed}{'' if fold is None else f':{fold}'}={folder}"]
        return quoted(runs)

    def train_args(self, wildcards) -> str:
        """`--set KEY=VALUE` of the dataset's train options and the combination's encoders and
        collapsed features (folds come with each `--run`)."""
        options = dict(self.experiments(wildcards.dataset)["train"])
        combo = self.experiments(wildcards.dataset)["combinations"][wildcards.combination]
        options |= {f"encoder.{name}": kind for name, kind in combo["encoders"].items()}
        options |= {f"collapse.{name}": how for name, how in combo["collapse"].items()}
        return set_args(options)

    def lr_trainings(self, dataset: str) -> int:
        """Trainings per run: 1 with a pinned `lr`, else one per `lr_candidates` (`lr: auto`, the
        default of model/options.py), which the rules' runtime multiplies by."""
        train = self.experiments(dataset)["train"]
        options = TrainOptions(**{k: str(train[k]) for k in ("lr", "lr_candidates") if k in train})
        return len(options.validate().lr_values())

    def predict_features(self, wildcards) -> list[str]:
        model = self.predict_model(wildcards.dataset)
        return self.experiments(model.dataset)["combinations"][model.combination]["features"]

    def predict_inputs(self, wildcards) -> dict[str, str]:
        model = self.predict_model(wildcards.dataset)
        inputs = {
            "manifest": MANIFEST.format(dataset=wildcards.dataset),
            "model": CELL_DIR.format(dataset=model.dataset, combination=model.combination, pool=model.pool),
        }
        return inputs | self.stores(wildcards.dataset, self.predict_features(wildcards))

    def predict_args(self, wildcards, input) -> str:
        run = quoted(["--run", f"{input.model}/{self.predict_model(wildcards.dataset).run}"])
        return f"{run} {self.feature_args(self.predict_features(wildcards), input)}"

    # --- rule report.smk ---------------------------------------------------------------------------

    def run_folders(self, wildcards, input) -> str:
        """`--runs` of a report job: every run folder of its cell inputs."""
        names = self.run_names(wildcards.dataset)
        return quoted(f"{cell}/{run}" for cell in input.runs for run in names)

    def label_args(self, wildcards) -> str:
        return set_args(self.experiments(wildcards.dataset)["labels"], "--label")

    def table_command(self, wildcards) -> str:
        """`table`, or `paper-table` with the paper's rows beside ours where the paper has a table."""
        paper = self.datasets[wildcards.dataset]["paper"]
        return f"paper-table --paper {paper}" if paper else "table"

    def gallery_inputs(self, wildcards) -> dict[str, Any]:
        """The manifest, the drawn stores (faces, objects, ocr), every max-pool run and the
        robustness job's removal effects."""
        ds = wildcards.dataset
        drawn = [n for n, f in self.dataset_features(ds).items() if entry(f["extractor"]).draws_boxes]
        return {
            "manifest": MANIFEST.format(dataset=ds),
            "runs": self.grid_cells(ds, pool="max"),
            "removal": f"{ROBUSTNESS.format(dataset=ds)}_removal.h5",
            "stores": list(self.stores(ds, drawn).values()),
        }

    @staticmethod
    def gallery_stores(wildcards, input) -> str:
        return quoted(a for path in input.stores for a in ("--store", path))

    # --- rule all ----------------------------------------------------------------------------------

    def dataset_outputs(self, dataset: str) -> list[str]:
        """A dataset's predictions, or its stores, table (CSV, MD, HTML), the stores' provenance,
        figures, comparisons, robustness and gallery."""
        if self.predict_model(dataset) is not None:
            return [f"{PREDICTIONS.format(dataset=dataset)}.csv"]
        outputs = list(self.stores(dataset, self.dataset_features(dataset)).values())
        multi = self.multi_feature_combinations(dataset)
        maxed = bool(self.grid(dataset, pool="max"))  # matrices and gallery show max-pool runs only
        if self.experiments(dataset)["combinations"]:
            table = TABLE.format(dataset=dataset)
            outputs += [f"{table}.csv", f"{table}.md", f"{table}.html", f"{STORES.format(dataset=dataset)}.html"]
            outputs += [
                IMPORTANCE_FIGURE.format(dataset=dataset, combination=name)
                for name in multi
                if "max" in self.combination_pools(dataset, name)
            ]
            outputs += [f"{MATRICES.format(dataset=dataset)}/overview.png"] if maxed else []
        if multi or self.combinations_where(dataset, lambda combo: combo["collapse"]):
            comparisons = COMPARISONS.format(dataset=dataset)
            outputs += [f"{comparisons}.csv", f"{comparisons}.md", f"{comparisons}.html"]
        if multi:
            robustness = ROBUSTNESS.format(dataset=dataset)
            outputs += [f"{robustness}.csv", f"{robustness}.html", f"{robustness}_views.csv"]
            outputs += [f"{GALLERY.format(dataset=dataset)}/{page}" for page in ("index.html", "standalone.html") if maxed]
        return outputs

    def default_targets(self, wildcards=None) -> list[str]:
        unknown = [name for name in self.targets if name not in self.datasets]
        if unknown:
            raise ValueError(
                f"targets {unknown} name no dataset in {self.sources}; "
                f"configured: {', '.join(self.datasets) or 'none'}"
            )
        return [path for name in self.targets for path in self.dataset_outputs(name)]
