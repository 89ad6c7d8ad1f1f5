# trafficfm: from the VIMER traffic-scene challenge's raw data to leaderboard submissions.
# Read this file as the table of contents; each included rule file is one stage.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/allinone.smk"
include: "workflow/rules/retrieval.smk"
include: "workflow/rules/submission.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/report.smk"


# Light rules run inside the submitting snakemake, never as cluster jobs: queueing them would only
# add waiting (and fetch_archive needs the internet, which compute nodes often lack).
localrules:
    all,
    make_demo_archives,
    fetch_archive,
    extract_archive,
    data_report,
    package_allinone,
    package_allinone_val,
    package_retrieval,
    package_retrieval_val,
    score_allinone,
    score_retrieval,
    allinone_figures,
    retrieval_figures,
    select_allinone,
    select_retrieval,
    publish_allinone,
    publish_retrieval,
    compare_experiments,


rule all:
    default_target: True
    input:
        final_outputs(),
