import os
import sys
from pathlib import Path

import pytest

# Never let a test reach a model hub; the shared helpers in tests/ import as plain modules.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads; one thread avoids oversubscribing a shared CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster on this machine for the session (tests/slurm_cluster.py); skipped,
    with the reason, where the Debian packages or the executor plugin are not installed."""
    from slurm_cluster import SlurmCluster, one_cluster_per_machine, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    saved = os.environ.get("SLURM_CONF")
    # 4 job slots even on 2 cores: the pipeline's tiny jobs spend most of their time waiting
    with one_cluster_per_machine(), SlurmCluster(tmp_path_factory.mktemp("slurm"),
                                                 cpus=max(4, os.cpu_count() or 1)) as cluster:
        os.environ["SLURM_CONF"] = str(cluster.conf)  # for sbatch/squeue run by tests and Snakemake
        try:
            yield cluster
        finally:
            if saved is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = saved
