"""Rule convert_allinone: the AllInOne release -> canonical tables and COCO files (checked)."""

import argparse
from pathlib import Path

import yaml

from trafficfm.data.convert_allinone import convert_allinone
from trafficfm.logs import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    convert_allinone(
        snakemake.params.root,
        Path(snakemake.output.manifest).parent,
        layout=snakemake.params.layout,
        num_classes=snakemake.params.num_classes,
        on_error=snakemake.params.on_error,
    )
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", help="release root holding track1_train_data/ and track1_test_data/")
    parser.add_argument("out_dir")
    parser.add_argument("--num-classes", type=int, default=196)
    parser.add_argument("--on-error", choices=["fail", "skip"], default="fail")
    parser.add_argument("--layout", help="YAML file with data.layout.allinone overrides")
    args = parser.parse_args()
    setup_logging()
    layout = yaml.safe_load(Path(args.layout).read_text()) if args.layout else None
    convert_allinone(args.root, args.out_dir, layout=layout, num_classes=args.num_classes,
                     on_error=args.on_error)
