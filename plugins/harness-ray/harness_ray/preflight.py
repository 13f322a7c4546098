"""What the actors need beyond harness itself, and a check of every other node before a run.

The driver ships to the actors, in a Ray runtime environment:

- its ``HARNESS_*``, ``OPENAI_*`` and ``ANTHROPIC_*`` environment variables (judge keys and
  endpoints), however it joined the cluster;
- the Python modules of the suite's ``python`` criteria that are not installed packages (a
  ``checks.py`` next to the suite, a folder on ``PYTHONPATH``), when the driver makes the
  connection to Ray (Ray uploads local modules for a whole job only).

Then, when the cluster has nodes other than the driver's, one small task per node checks that
the node sees the judge cache the driver sees (the same folder, not a folder of the same name)
and can import the suite's ``python`` criteria: a run that would split its cache across nodes,
or whose actors could not build the suite, is refused in one line before it starts.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.suite import Suite

PASSED_ENV = ("HARNESS_", "OPENAI_", "ANTHROPIC_")
"""Environment variables handed to the actors (judge keys and endpoints)."""
MARKER = ".harness-ray-"
PROBE_TIMEOUT_S = 120.0


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}


def python_functions(suite: Suite) -> list[str]:
    """``module:function`` of the suite's ``python`` criteria."""
    return [str(c.config["function"]) for c in suite.criteria
            if c.kind == "python" and isinstance(c.config.get("function"), str)]


def _installed(path: Path) -> bool:
    """Whether ``path`` is part of the Python installation (the standard library or
    site-packages), which every node of a cluster is expected to have."""
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {sys.prefix, sys.base_prefix}
    return any(path.is_relative_to(root) for root in map(Path, roots))


def suite_modules(suite: Suite) -> list[Path]:
    """The files and packages the suite's ``python`` criteria import from outside the Python
    installation, found as the criteria find them (next to the suite first)."""
    found: dict[str, Path] = {}
    for ref in python_functions(suite):
        module = ref.partition(":")[0]
        top = module.split(".")[0]
        beside = suite.directory / (module.replace(".", "/") + ".py")
        if beside.is_file():
            found[top] = (suite.directory / top if "." in module else beside).resolve()
            continue
        spec = importlib.util.find_spec(top) if top not in sys.modules else \
            getattr(sys.modules[top], "__spec__", None)
        origin = spec.origin if spec is not None else None
        if not origin or origin in ("built-in", "frozen"):
            continue
        path = Path(origin)
        path = path.parent if path.name == "__init__.py" else path
        if not _installed(path):
            found[top] = path.resolve()
    return list(found.values())


def job_env(suite: Suite) -> dict[str, Any]:
    """The Ray runtime environment of a job this driver starts: the environment variables
    and the suite's modules (Ray uploads local modules for a whole job only)."""
    env: dict[str, Any] = {"env_vars": forwarded_env()}
    if modules := suite_modules(suite):
        env["py_modules"] = [str(p) for p in modules]
    return env


def actor_env() -> dict[str, Any]:
    """The actors' own runtime environment: the environment variables, also when this
    driver joined a connection it did not make (the job's modules come with the job)."""
    return {"env_vars": forwarded_env()}


@dataclass(frozen=True)
class Marker:
    """A file with a random token, written by the driver in the judge cache folder: a node that
    reads the same token there sees the same folder."""

    path: Path
    token: str

    @classmethod
    def write(cls, folder: Path) -> Marker:
        folder.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(16)
        path = folder / f"{MARKER}{token}"
        path.write_text(token)
        return cls(path, token)

    def seen(self) -> bool:
        try:
            return self.path.read_text() == self.token
        except OSError:
            return False

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def cache_not_shared(marker: Marker) -> str:
    return (f"the judge cache folder {marker.path.parent} is not the driver's on "
            f"{socket.gethostname()}: on a cluster of several machines, give --cache-dir (or "
            "put the run directory on) a filesystem every node mounts")


def check_node(marker: Marker | None, functions: list[str], suite_dir: str) -> str | None:
    """What this node lacks (runs on each node as a Ray task), or ``None``."""
    from harness_criteria.python import import_function

    if marker is not None and not marker.seen():
        return cache_not_shared(marker)
    for ref in functions:
        try:
            import_function(ref, suite_dir)
        except Exception as exc:  # noqa: BLE001 - said in one line
            return (f"the python criterion {ref} cannot be imported on "
                    f"{socket.gethostname()}: {type(exc).__name__}: {exc}")
    return None


def other_nodes(ray: Any) -> list[str]:
    """Alive nodes with CPUs, other than the driver's."""
    here = ray.get_runtime_context().get_node_id()
    return [n["NodeID"] for n in ray.nodes()
            if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0 and n["NodeID"] != here]


def check_nodes(ray: Any, nodes: list[str], env: dict[str, Any], marker: Marker | None,
                suite: Suite) -> None:
    """Run :func:`check_node` on every node; a :class:`UsageError` for the first problem."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(num_cpus=0)(check_node)
    refs = [check.options(runtime_env=env, scheduling_strategy=NodeAffinitySchedulingStrategy(
        node, soft=False)).remote(marker, python_functions(suite), str(suite.directory))
        for node in nodes]
    try:
        problems = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - a runtime environment that cannot be set up...
        raise UsageError("the Ray cluster's other nodes could not be checked: "
                         f"{' '.join(str(exc).split())[:300]}") from None
    for problem in problems:
        if problem:
            raise UsageError(problem)
