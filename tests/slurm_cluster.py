"""A real one-node SLURM cluster for the tests: Debian's `slurm-wlm` and `munge` daemons started
from a generated slurm.conf in a temporary folder, and stopped by the process ids started here.

The node runs in "configless" mode (slurmd fetches its configuration from slurmctld and publishes
it under /run/slurm/conf), because the executor plugin's job step drops SLURM_CONF from the
environment of its inner `srun`: commands inside a job find the configuration the way they do on
a configless production cluster. No accounting database: `sacct` is disabled, as on the clusters
the profile's accounting-less setting is for."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel", "sinfo")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")  # where Slurm's auth/munge looks without AuthInfo
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
CONFIGLESS_LINK = Path("/run/slurm/conf")
# One test cluster per machine at a time: the munge socket and the configless link are global.
MACHINE_LOCK = Path("/tmp/trafficfm-slurm-test-cluster.lock")


@contextlib.contextmanager
def one_cluster_per_machine(timeout: float = 1200):
    """Hold the machine's test-cluster lock, waiting up to ``timeout`` s for another session's
    cluster to stop; raise TimeoutError if it does not."""
    with open(MACHINE_LOCK, "a") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another test session's SLURM cluster held {MACHINE_LOCK} for "
                                       f"{timeout:.0f} s") from None
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def unavailable_reason() -> str | None:
    """Why no cluster can be started on this machine, or None when it can."""
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        return (f"SLURM packages not installed (missing {', '.join(missing)}); "
                "`apt-get install slurm-wlm munge` (.ci/run does this where apt-get is available)")
    if os.geteuid() != 0:
        return "starting slurmd and munged needs root"
    if SYSTEM_CONF.exists():
        return (f"{SYSTEM_CONF} exists: job steps would use that cluster's configuration "
                "(the executor plugin drops SLURM_CONF inside jobs)")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm not installed: pip install -e '.[slurm]'"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _munge_works() -> bool:
    try:
        token = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        return token.returncode == 0 and subprocess.run(
            ["unmunge"], input=token.stdout, capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class SlurmCluster:
    """One node (this host) in one partition, ``partition``; ``env`` points SLURM clients at it.
    ``cpus`` may exceed the machine's (the tests' jobs are small and mostly wait on each other).
    Use as a context manager, or call start() and stop()."""

    def __init__(self, root: Path, partition: str = "debug", cpus: int | None = None, memory_mb: int | None = None):
        self.root = Path(root)
        self.partition = partition
        self.node = socket.gethostname().split(".")[0]
        self.cpus = cpus or os.cpu_count() or 1
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.memory_mb = memory_mb or int(total_mb * 0.8)
        self.conf = self.root / "slurm.conf"
        self.log_dir = self.root / "log"
        self._procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # --------------------------------------------------------------------------------- life cycle
    def start(self) -> SlurmCluster:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if not _munge_works():
            self._start_munged()
        port = _free_port()
        self.conf.write_text(self._slurm_conf(port, _free_port()))
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._wait(lambda: self._run("scontrol", "ping").returncode == 0, "slurmctld to answer")
        # configless: the node asks the controller for its configuration
        env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
        self._spawn("slurmd", ["slurmd", "-D", "--conf-server", f"{self.node}:{port}"], env=env)
        self._wait(lambda: self._run("sinfo", "-h", "-n", self.node, "-o", "%t").stdout.strip() == "idle",
                   "the node to become idle")
        return self

    def stop(self) -> None:
        """Cancel what is left in the queue (its job steps outlive slurmd), then end the daemons
        this object started, newest first, by process id."""
        if self._procs and any(p.poll() is None for p in self._procs):
            self.cancel_all()
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        if CONFIGLESS_LINK.is_symlink() and str(self.root) in os.readlink(CONFIGLESS_LINK):
            CONFIGLESS_LINK.unlink()

    def __enter__(self) -> SlurmCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------ queries
    def jobs(self) -> list[dict]:
        """Jobs the controller still knows (running, pending, and finished within MinJobAge: an hour here)."""
        out = self._run("squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%k|%P|%D|%C").stdout
        keys = ("id", "name", "state", "comment", "partition", "nodes", "cpus")
        return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]

    def cancel_all(self, timeout: float = 60) -> None:
        for job in self.jobs():
            if job["state"] in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED"):
                self._run("scancel", job["id"])
        self._wait(lambda: all(j["state"] not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")
                               for j in self.jobs()), "the queue to drain", timeout)

    def slurmd_log(self) -> str:
        path = self.log_dir / "slurmd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def slurmctld_log(self) -> str:
        path = self.log_dir / "slurmctld.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------------------------------ helpers
    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)

    def _spawn(self, name: str, cmd: list[str], env: dict | None = None) -> None:
        out = open(self.log_dir / f"{name}.out", "ab")
        self._procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                            env=env or self.env, start_new_session=True))
        out.close()

    def _wait(self, ready, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}) while waiting for "
                                       f"{what}; see {self.log_dir}")
            if ready():
                return
            time.sleep(0.5)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}; see {self.log_dir}")

    def _start_munged(self) -> None:
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        self._spawn("munged", ["munged", "-F", "--force", f"--socket={MUNGE_SOCKET}", f"--key-file={key}",
                               f"--pid-file={self.root / 'munged.pid'}", f"--seed-file={self.root / 'munge.seed'}",
                               f"--log-file={self.log_dir / 'munged.log'}"])
        self._wait(_munge_works, "munged")

    def _slurm_conf(self, ctld_port: int, slurmd_port: int) -> str:
        r, log = self.root, self.log_dir
        return f"""\
ClusterName=trafficfm-test
SlurmctldHost={self.node}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdParameters=config_overrides
SlurmctldParameters=enable_configless
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=3600
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={log}/slurmctld.log
SlurmdLogFile={log}/slurmd.log
NodeName={self.node} CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
