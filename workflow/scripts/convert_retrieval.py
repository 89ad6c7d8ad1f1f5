"""Rule convert_retrieval: the retrieval release -> canonical pair, image and query tables."""

import argparse
from pathlib import Path

import yaml

from trafficfm.data.convert_retrieval import convert_retrieval
from trafficfm.logs import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    convert_retrieval(
        snakemake.params.root,
        Path(snakemake.output.manifest).parent,
        layout=snakemake.params.layout,
        on_error=snakemake.params.on_error,
    )
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", help="release root holding train/, val/ and test/")
    parser.add_argument("out_dir")
    parser.add_argument("--on-error", choices=["fail", "skip"], default="fail")
    parser.add_argument("--layout", help="YAML file with data.layout.retrieval overrides")
    args = parser.parse_args()
    setup_logging()
    layout = yaml.safe_load(Path(args.layout).read_text()) if args.layout else None
    convert_retrieval(args.root, args.out_dir, layout=layout, on_error=args.on_error)
