"""`LocalDeployment`: Flower's Deployment Engine on this machine's loopback, for tests and benchmarks.

One `flower-superlink` and N `flower-supernode` processes (insecure, telemetry off, no runtime dependency
installation, a temporary FLWR_HOME with a connection named "local"), then `flwr run APP local`. Every
process it starts is stopped by its PID when the block ends, whatever happened inside it.

    with LocalDeployment(num_nodes=3) as dep:
        run = dep.run("examples/flower_app", run_config="num-server-rounds=2")
        run.wait()
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from fl_core.errors import ConfigError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalDeployment:
    """A SuperLink and `num_nodes` SuperNodes (node config: partition-id i, num-partitions N) on loopback.

    `pythonpath`: directories put first on every process's path (so the SuperLink's ServerApp and the
    SuperNodes' ClientApps import the same code as the caller). Logs are in `self.dir`."""

    def __init__(
        self,
        num_nodes: int,
        *,
        pythonpath: list[str] | None = None,
        node_config: Callable[[int], str] | None = None,
        workdir: str | Path | None = None,
        startup_timeout: float = 120.0,
    ) -> None:
        if num_nodes < 1:
            raise ConfigError(f"num_nodes must be >= 1, got {num_nodes}")
        self.bin = Path(sys.executable).parent
        if not (self.bin / "flower-superlink").exists():
            raise ConfigError(
                f"flower-superlink is not installed beside {sys.executable} (pip install 'privagg[flower]')"
            )
        self.num_nodes = num_nodes
        self.node_config = node_config or (lambda i: f"partition-id={i} num-partitions={num_nodes}")
        self._own_dir = workdir is None
        self.dir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="privagg-flower-"))
        self.home = self.dir / "flwr_home"
        self.port = free_port()
        paths = [*(pythonpath or []), os.environ.get("PYTHONPATH", "")]
        self.env = {
            **os.environ,
            "FLWR_HOME": str(self.home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        }
        self.startup_timeout = startup_timeout
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.last_run = "run"

    # -- processes ---------------------------------------------------------------------------------
    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with open(self.dir / f"{name}.log", "wb") as log:  # its own process group: Flower's children too
            p = subprocess.Popen(
                args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True
            )
        self.procs[name] = p
        return p

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for(self, name: str, pattern: str, timeout: float) -> re.Match[str] | None:
        """The first match of `pattern` in a process's log, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log(name))
            if m:
                return m
            if self.procs[name].poll() is not None:
                return re.search(pattern, self.log(name))
            time.sleep(0.5)
        return None

    def __enter__(self) -> LocalDeployment:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{self.port}"\n'
            "insecure = true\n"
        )
        try:
            self._start(
                "superlink",
                [str(self.bin / "flower-superlink"), "--insecure",
                 "--disable-runtime-dependency-installation", "--database", str(self.dir / "state.db"),
                 "--host", "127.0.0.1", "--port", str(self.port)],
            )  # fmt: skip
            if not self.wait_for("superlink", "Uvicorn running", self.startup_timeout):
                raise ConfigError(f"the SuperLink did not start: {self.log('superlink')[-500:]}")
            for i in range(self.num_nodes):
                self._start(
                    f"supernode{i}",
                    [str(self.bin / "flower-supernode"), "--insecure",
                     "--superlink", f"127.0.0.1:{self.port}", "--node-config", self.node_config(i),
                     "--host", "127.0.0.1", "--port", str(free_port())],
                )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self

    def run(self, app: str | Path, *, run_config: str = "") -> subprocess.Popen[bytes]:
        """`flwr run APP local --stream` (log: `self.log(self.last_run)`, "run" for the first); waits first
        until every node registered."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and self._registered() < self.num_nodes:
            time.sleep(0.5)
        args = [str(self.bin / "flwr"), "run", str(app), "local", "--stream"]
        if run_config:
            args += ["--run-config", run_config]
        runs = sum(1 for name in self.procs if name.startswith("run"))
        self.last_run = "run" if runs == 0 else f"run{runs + 1}"  # each run's own log and PID
        return self._start(self.last_run, args)

    def _registered(self) -> int:
        return sum(1 for i in range(self.num_nodes) if "SuperNode ID:" in self.log(f"supernode{i}"))

    def wait_for_file(self, path: Path, timeout: float) -> bool:
        """True once `path` exists (a ServerApp's summary: the log stream may end before the run does)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return True
            time.sleep(0.5)
        return path.exists()

    def kill(self, name: str) -> None:
        """SIGKILL one process and the processes it started (a node that dies without a goodbye)."""
        p = self.procs[name]
        _signal_group(p, signal.SIGKILL)
        p.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM every process started here and its process group (the ServerApp and ClientApp processes
        Flower spawned), by PID; SIGKILL after 20 s."""
        for p in self.procs.values():
            _signal_group(p, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait()
        for p in self.procs.values():  # children that outlived their parent
            _signal_group(p, signal.SIGKILL)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._own_dir and exc is None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _signal_group(p: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the process group `p` leads (started with start_new_session), ignoring a gone group."""
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
