# The data stage: demo archives or real ones -> fetched, verified, extracted -> canonical datasets.


wildcard_constraints:
    archive="|".join(re.escape(f) for f in ARCHIVES_BY_FILE) or "no-archive",


rule make_demo_archives:
    output:
        archives=[f"{DEMO_DIR}/{a.file}" for a in SETTINGS.data.archives.values()],
        sums=f"{DEMO_DIR}/SHA256SUMS",
        truth=directory(f"{DEMO_DIR}/truth"),
    log:
        "logs/make_demo_archives.log",
    benchmark:
        "benchmarks/make_demo_archives.tsv"
    conda:
        ENV
    params:
        demo=SETTINGS.data.demo.to_dict(),
        layout=SETTINGS.data.layout.to_dict(),
        archives=SETTINGS.data.archives.to_dict(),
    script:
        "../scripts/make_demo_archives.py"


rule fetch_archive:
    input:
        unpack(demo_inputs),
    output:
        f"{ARCHIVE_DIR}/{{archive}}",
    log:
        "logs/fetch_archive/{archive}.log",
    conda:
        ENV
    params:
        url=lambda wc: archive_entry(wc).url,
        sha256=lambda wc: archive_entry(wc).sha256,
        download=SETTINGS.data.download.to_dict(),
    script:
        "../scripts/fetch_archive.py"


rule extract_archive:
    input:
        f"{ARCHIVE_DIR}/{{archive}}",
    output:
        f"{RELEASE_DIR}/.extracted/{{archive}}.json",
    log:
        "logs/extract_archive/{archive}.log",
    conda:
        ENV
    params:
        dest=lambda wc, output: Path(output[0]).parent.parent,
    script:
        "../scripts/extract_archive.py"


rule convert_allinone:
    input:
        extracted_markers("allinone"),
    output:
        manifest=ALLINONE_MANIFEST,
        tables=ALLINONE_TABLES,
    log:
        "logs/convert_allinone.log",
    benchmark:
        "benchmarks/convert_allinone.tsv"
    conda:
        ENV
    params:
        root=PLAN.roots["allinone"],
        layout=SETTINGS.data.layout.allinone.to_dict(),
        num_classes=num_cls_classes(),
        on_error=SETTINGS.data.on_error,
    script:
        "../scripts/convert_allinone.py"


rule convert_retrieval:
    input:
        extracted_markers("retrieval"),
    output:
        manifest=RETRIEVAL_MANIFEST,
        tables=RETRIEVAL_TABLES,
    log:
        "logs/convert_retrieval.log",
    benchmark:
        "benchmarks/convert_retrieval.tsv"
    conda:
        ENV
    params:
        root=PLAN.roots["retrieval"],
        layout=SETTINGS.data.layout.retrieval.to_dict(),
        on_error=SETTINGS.data.on_error,
    script:
        "../scripts/convert_retrieval.py"


rule data_report:
    input:
        allinone=ALLINONE_MANIFEST,
        retrieval=RETRIEVAL_MANIFEST,
    output:
        summary=f"{DATA_REPORT}/summary.json",
        counts=report(
            f"{DATA_REPORT}/counts.png",
            category="Data",
            caption="../report/data_counts.rst",
        ),
        sizes=report(
            f"{DATA_REPORT}/image_sizes.png",
            category="Data",
            caption="../report/data_sizes.rst",
        ),
        examples=report(
            directory(f"{DATA_REPORT}/examples"),
            patterns=["{name}.jpg"],
            category="Data",
            subcategory="Examples",
            caption="../report/data_examples.rst",
        ),
    log:
        "logs/data_report.log",
    conda:
        ENV
    params:
        examples=SETTINGS.data.report_examples,
    script:
        "../scripts/data_report.py"
