"""A real 2-node Ray cluster on this machine, for tests: a head node and a worker node, each
``ray start --block`` in its own process group with its own ``--temp-dir`` and ports, token
authentication on (Ray's default for a new instance), 1 CPU each.

The worker node can be started in a mount namespace where a folder is hidden (an empty tmpfs
over it): what the driver reads there, the worker node cannot, as on a cluster whose nodes do
not share that filesystem. The nodes are ended by their process groups (and any process left
that names their temp dir), never by ``ray stop``, which would end every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 120


def free_port() -> int:
    """A free TCP port outside Ray's default worker port range (10002-19999)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 20000:
            return port


def can_hide_folders() -> bool:
    """Whether this machine lets an unprivileged mount namespace hide a folder."""
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--mount", "--map-root-user", "true"],
                          capture_output=True)
    return done.returncode == 0


class Cluster:
    """The cluster (see the module doc); ``env()`` is what a driver needs to join it."""

    def __init__(self, hidden: Path | None = None) -> None:
        # short: Ray's socket paths under it must stay within 107 bytes
        self.root = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self.token = secrets.token_hex(32)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.dirs: list[Path] = []
        try:
            self._node("head", ["--head", f"--port={self.port}", "--include-dashboard=false",
                                f"--ray-client-server-port={free_port()}",
                                f"--dashboard-port={free_port()}"])
            self._wait_for(1)
            self._node("worker", [f"--address={self.address}"], hidden=hidden)
            self._wait_for(2)
        except BaseException:
            self.stop()
            raise

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a driver that joins the cluster (with its token)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        return {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, **extra}

    def _node(self, name: str, args: list[str], hidden: Path | None = None) -> None:
        temp = self.root / name
        temp.mkdir(parents=True, exist_ok=True)
        self.dirs.append(temp)
        command = [RAY, "start", "--block", "--num-cpus=1", "--disable-usage-stats",
                   f"--temp-dir={temp}", "--dashboard-agent-listen-port=0", *args]
        if hidden is not None:  # the node's own view of the files: the folder is empty
            script = f'mount -t tmpfs tmpfs "{hidden}" && exec "$@"'
            command = ["unshare", "--mount", "--map-root-user", "--propagation", "private",
                       "sh", "-c", script, "sh", *command]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RAY_", "HARNESS_", "OPENAI_", "ANTHROPIC_"))}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        log = (self.root / f"{name}.log").open("wb")
        self.procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=log,
                                           start_new_session=True, cwd=self.root))

    def _wait_for(self, nodes: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a Ray node ended: {self._log_tail()}")
            if self.alive_nodes() >= nodes:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the Ray cluster did not start: {self._log_tail()}")

    def _log_tail(self) -> str:
        return " | ".join(log.read_text(errors="replace")[-600:]
                          for log in sorted(self.root.glob("*.log")))

    def alive_nodes(self) -> int:
        """Nodes the GCS knows alive (one gRPC call, with the token)."""
        import grpc
        from ray.core.generated import gcs_service_pb2

        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        call = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetAllNodeInfo",
                                   request_serializer=bytes,
                                   response_deserializer=gcs_service_pb2.GetAllNodeInfoReply
                                   .FromString)
        try:
            reply = call(b"", timeout=5, metadata=[("authorization", f"Bearer {self.token}")])
        except grpc.RpcError:
            return 0
        finally:
            channel.close()
        return sum(1 for node in reply.node_info_list if node.state == 0)  # ALIVE

    def stop(self) -> None:
        for proc in self.procs:  # a throwaway cluster: no graceful shutdown to wait for
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for temp in self.dirs:  # what left its process group (Ray's workers)
            found = subprocess.run(["pgrep", "-f", str(temp)], capture_output=True, text=True)
            for pid in found.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
