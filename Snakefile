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
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
