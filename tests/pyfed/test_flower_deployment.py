"""pyfed on a real Flower deployment on 127.0.0.1: a SuperLink and two SuperNodes as separate processes
(``flower-superlink``, ``flower-supernode --node-config partition-id=i``), runs submitted with
``flwr run <repo> <connection>`` (the app of pyproject.toml's [tool.flwr.app]).

One deployment for the module (starting it costs seconds); the tests run in file order:
(1) two rounds, the accuracy moves; (2) a SuperNode is killed mid-run, the run finishes with the other
client and the server loses nothing; (3) SuperLink and SuperNodes shut down cleanly and leave no process
behind. Ports are chosen free, every wait has a deadline, and the fixture kills what is left in finally.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")
psutil = pytest.importorskip("psutil")
httpx = pytest.importorskip("httpx")

from kernels.runs import load_state  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STARTUP_S, RUN_S, STOP_S = 60, 150, 20

# ~3.5 min on 2 shared cores (every ClientApp message is a fresh process that imports torch): slow. The
# fast variants of the fault handling (a lost client, a retried round) run in test_flower_simulation.py.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BIN / "flower-superlink").exists(),
                       reason="flower-superlink is not installed beside this Python"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, seconds: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        dead = [p.args[0] for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"while waiting for {what}: {dead} exited")
        time.sleep(0.5)
    raise TimeoutError(f"{what} not within {seconds} s")


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Deployment:
    def __init__(self, root: Path):
        self.root = root
        self.home = root / "flwr-home"
        self.home.mkdir()
        self.port = _free_port()
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the SuperLink spawns flower-superexec
            "FLWR_HOME": str(self.home),  # the flwr CLI's config.toml: our connection, not the user's
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
        }
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "e2e"\n\n[superlink.e2e]\naddress = "127.0.0.1:{self.port}"\n'
            "insecure = true\n"
        )
        self.link: subprocess.Popen | None = None
        self.nodes: list[subprocess.Popen] = []
        self.descendants: list = []

    def _start(self, cmd: list[str], log: str) -> subprocess.Popen:
        with open(self.root / log, "w") as out:
            return subprocess.Popen(cmd, env=self.env, cwd=self.root, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def start(self) -> None:
        # no runtime `uv sync`: the app runs in this environment (and this machine has no internet)
        cmd = [str(BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port", str(self.port),
               "--disable-runtime-dependency-installation"]
        self.link = self._start(cmd, "superlink.log")

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        _wait(healthy, STARTUP_S, "the SuperLink", [self.link])
        for pid in (0, 1):
            self.nodes.append(self._start(
                [str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{self.port}",
                 "--port", str(_free_port()), "--node-config", f"partition-id={pid} num-partitions=2"],
                f"supernode{pid}.log"))

    def submit(self, run_dir: Path, **config) -> None:
        pairs = {"clients": 2, "clients-per-round": 2, "local-steps": 5, "batch-size": 16, "alpha": 1.0,
                 "threads": 1, "run-dir": str(run_dir), **config}
        text = " ".join(f"{k}={json.dumps(v)}" for k, v in pairs.items())
        out = subprocess.run([str(BIN / "flwr"), "run", str(REPO), "e2e", "--run-config", text],
                             env=self.env, cwd=self.root, capture_output=True, text=True, timeout=STARTUP_S)
        assert out.returncode == 0 and "Successfully started run" in out.stdout, out.stdout + out.stderr

    def tree(self) -> list:
        """Every live process we started, with its descendants (flower-superexec, flwr-serverapp and
        flwr-clientapp run in sessions of their own: a process-group kill would miss them)."""
        procs = []
        for p in [self.link, *self.nodes]:
            if p is not None and p.poll() is None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    procs.extend(psutil.Process(p.pid).children(recursive=True))
        return procs

    def kill_node(self, i: int) -> None:
        node = psutil.Process(self.nodes[i].pid)
        for v in [node, *node.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                v.kill()
        self.nodes[i].wait(timeout=STOP_S)

    def stop(self) -> dict[str, int | None]:
        """SIGTERM the SuperNodes, SIGINT the SuperLink (uvicorn's clean shutdown); wait; exit codes."""
        self.descendants.extend(self.tree())
        for p in self.nodes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        if self.link is not None and self.link.poll() is None:
            self.link.send_signal(signal.SIGINT)
        codes = {}
        for name, p in [("superlink", self.link), *((f"supernode{i}", p) for i, p in enumerate(self.nodes))]:
            try:
                codes[name] = p.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                codes[name] = None
        return codes

    def kill_all(self) -> None:
        for p in [*self.tree(), *self.descendants]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        for p in [self.link, *self.nodes]:
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=STOP_S)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    d = Deployment(tmp_path_factory.mktemp("deployment"))
    try:
        d.start()
        yield d
    finally:
        d.stop()
        d.kill_all()


def test_two_rounds_on_a_real_superlink_and_two_supernodes(deployment):
    run_dir = deployment.root / "run-e2e"
    deployment.submit(run_dir, algo="fedmuon", rounds=2)
    _wait(lambda: len(_metrics(run_dir)) == 2, RUN_S, "2 rounds", [deployment.link, *deployment.nodes])
    ms = _metrics(run_dir)
    assert [m["round"] for m in ms] == [1, 2]
    assert all(sorted(m["clients"]) == [0, 1] and m["failed"] == [] for m in ms)
    assert ms[-1]["test_acc"] > ms[0]["test_acc"] and ms[-1]["test_acc"] > 0.2  # 10 classes: chance 0.1
    assert all(m["wire_bytes_down"] > m["bytes_down"] > 0 for m in ms)
    _wait(lambda: (run_dir / "checkpoint.safetensors").exists(), 30, "the checkpoint")
    assert load_state(run_dir / "checkpoint.safetensors")["round"] == 2


def test_a_supernode_killed_mid_run(deployment):
    """Node 1 dies once round 1 is logged (round 2 in flight); round 2 completes with client 0 after
    the round timeout, round 3 goes to client 0 only, and the server's state and files are whole."""
    run_dir = deployment.root / "run-kill"
    deployment.submit(run_dir, algo="fedavg", rounds=3, lr=0.1, **{"round-timeout": 25.0})
    procs = [deployment.link, *deployment.nodes]
    _wait(lambda: len(_metrics(run_dir)) >= 1, RUN_S, "round 1", procs)
    deployment.kill_node(1)
    _wait(lambda: len(_metrics(run_dir)) == 3, RUN_S, "rounds 2-3 without node 1", procs[:2])
    ms = _metrics(run_dir)
    assert sorted(ms[0]["clients"]) == [0, 1]
    assert [m["clients"] for m in ms[1:]] == [[0], [0]] and [m["failed"] for m in ms[1:]] == [[1], [1]]
    _wait(lambda: (run_dir / "checkpoint.safetensors").exists()
          and load_state(run_dir / "checkpoint.safetensors")["round"] == 3, 30, "the round-3 checkpoint")
    state = load_state(run_dir / "checkpoint.safetensors")["state"]
    assert all(bool(v.isfinite().all()) for v in state["weights"].values())


def test_superlink_and_supernodes_exit_cleanly(deployment):
    alive = [p for p in deployment.nodes if p.poll() is None]
    assert len(alive) == 1  # node 1 was killed by the previous test
    codes = deployment.stop()
    assert codes == {"superlink": 0, "supernode0": 0, "supernode1": -signal.SIGKILL}
    # what they spawned (superexec, serverapp, clientapp processes) ends with them
    _wait(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                          for p in deployment.descendants), STOP_S, "the children to exit")
