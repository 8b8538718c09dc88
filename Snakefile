# dmms: Deep Multi-Modal Sets, reproduced. Stage 1 extracts every modality of a dataset into
# ragged HDF5 feature stores; stage 2 trains and evaluates set models and writes the tables.
#
#   snakemake --cores 8 results/demo_table.csv    (the default target: the demo)
#   snakemake --cores 8 results/imdb_table.csv


from snakemake.utils import min_version

min_version("9.0")


# Found next to this Snakefile, so `snakemake -s PATH/Snakefile --directory WORKDIR` works too.
configfile: os.path.join(workflow.basedir, "config/config.yaml")


report: "rules/captions/workflow.rst"


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/data.smk"
include: "rules/extract.smk"
include: "rules/train.smk"
include: "rules/report.smk"
include: "rules/predict.smk"


rule all:
    input:
        PLAN.default_targets,
