"""Run Snakemake on this repository's workflow in a temporary working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path, *args: str, snakefile: Path = ROOT / "Snakefile", configs=(),
                  check: bool = True, cores: int = 2) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` with config.yaml plus ``configs`` overlays; raise with the logs on failure."""
    # Options that take several values come last so that they cannot swallow the targets.
    command = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(snakefile),
               "--directory", str(workdir), "--cores", str(cores), "--quiet=rules",
               "--configfile", str(ROOT / "config.yaml"), *map(str, configs)]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result
