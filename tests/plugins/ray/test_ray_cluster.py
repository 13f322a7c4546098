"""The Ray engine on a real 2-node cluster (tests/plugins/ray/cluster.py), as its users meet one:
a worker node that does not see the driver's folder (inputs, the suite's modules, the run
directory), a cluster joined without --ray-address, a driver without the cluster's token.

The driver is ``harness run`` in a process of its own, joined to the cluster by address; the
cluster is started once for the file (slow: two Ray nodes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

TESTS = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(TESTS), str(TESTS / "judges"), str(Path(__file__).resolve().parent)]

from chat_server import ChatServer  # noqa: E402
from cluster import Cluster, can_hide_folders  # noqa: E402
from testutil import chat, write_jsonl  # noqa: E402

pytest.importorskip("ray")
pytest.importorskip("harness_ray")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not can_hide_folders(),
                                 reason="needs unprivileged mount namespaces (unshare)")]

HARNESS = [sys.executable, "-m", "harness"]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """The cluster, and the folder only the driver (and the head node) sees."""
    hidden = tmp_path_factory.mktemp("driver-only")
    cluster = Cluster(hidden=hidden)
    try:
        yield cluster, hidden
    finally:
        cluster.stop()


def harness(cluster: Cluster, *args: object, address: bool = True, **env: str
            ) -> subprocess.CompletedProcess:
    joined = ["--ray-address", cluster.address] if address else []
    return subprocess.run([*HARNESS, "run", *map(str, args), "--engine", "ray", *joined,
                           "--ray-actors", "2", "--ray-batch-size", "10", "--no-progress",
                           "--no-report"], capture_output=True, text=True,
                          env=cluster.env(**env), timeout=600)


SEES = '''\
import os

HIDDEN = {hidden!r}


def sees(transcript):
    """1.0 on the node that sees the driver's folder, 0.9 on one that does not."""
    return 1.0 if os.path.exists(os.path.join(HIDDEN, "suite.yaml")) else 0.9
'''


def test_inputs_and_suite_modules_only_the_driver_sees_are_all_reviewed(nodes, tmp_path):
    """The worker node sees neither the inputs nor the suite's python module: the driver's node
    reads the inputs, the module is shipped to the actors, and both nodes review."""
    cluster, hidden = nodes
    folder = hidden / "reviewed"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [chat("q", f"a {i}", id=f"a{i}") for i in range(40)])
    pq.write_table(pa.table({"id": [f"b{i}" for i in range(40)],
                             "messages": [chat("q", f"b {i}")["messages"] for i in range(40)]}),
                   folder / "b.parquet")
    (folder / "sees.py").write_text(SEES.format(hidden=str(folder)))
    (folder / "suite.yaml").write_text(
        "name: s\ncriteria:\n  - {name: sees, kind: python, function: sees:sees}\n")
    done = harness(cluster, folder / "suite.yaml", folder / "a.jsonl", folder / "b.parquet",
                   "-o", tmp_path / "run")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["read"], summary["passed"], summary["errored"]) == (80, 80, 0)
    scores = set(pq.read_table(tmp_path / "run" / "results.parquet").column("score")
                 .to_pylist())
    assert scores == {1.0, 0.9}, "both nodes reviewed (one of them blind to the folder)"


def test_a_judge_cache_the_nodes_do_not_share_is_refused_and_a_shared_one_serves_all(
        nodes, tmp_path):
    cluster, hidden = nodes
    data = write_jsonl(tmp_path / "in.jsonl", [chat("q", f"answer {i}") for i in range(30)])
    with ChatServer() as server:
        suite = tmp_path / "suite.yaml"
        suite.write_text(f"name: judged\njudge: {{name: openai/j, base_url: {server.base_url}}}"
                         "\ncriteria:\n  - {name: fine, kind: llm_judge, "
                         "rubric: 'Fine? {{ last_assistant }}'}\n")
        refused = harness(cluster, suite, data, "-o", hidden / "run")
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert "--cache-dir" in refused.stderr and server.requests == []
        assert not (hidden / "run" / "journal.jsonl").exists()

        shared = ["--cache-dir", tmp_path / "cache"]
        done = harness(cluster, suite, data, "-o", hidden / "run", *shared)
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(server.requests) == 30
        again = harness(cluster, suite, data, "-o", hidden / "run", "--overwrite", *shared)
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(server.requests) == 30, "every answer came from the one shared cache"


ENV = '''\
import os


def keyed(transcript):
    return os.environ.get("HARNESS_TEST_KEY") == "from-the-driver"
'''


def test_joining_with_ray_address_unset_hands_the_environment_to_the_actors(nodes, tmp_path):
    """RAY_ADDRESS names the cluster, --ray-address is not given: the judge keys and
    endpoints (HARNESS_*, OPENAI_*, ANTHROPIC_*) reach the actors all the same."""
    cluster, _ = nodes
    data = write_jsonl(tmp_path / "in.jsonl", [chat("q", f"answer {i}") for i in range(20)])
    (tmp_path / "keyed.py").write_text(ENV)
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - {name: keyed, kind: python, "
                     "function: keyed:keyed}\n")
    done = harness(cluster, suite, data, "-o", tmp_path / "run", address=False,
                   RAY_ADDRESS=cluster.address, HARNESS_TEST_KEY="from-the-driver")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["read"], summary["passed"]) == (20, 20)


def test_a_driver_without_the_cluster_s_token_is_told_so_in_one_line(nodes, tmp_path):
    cluster, _ = nodes
    data = write_jsonl(tmp_path / "in.jsonl", [chat("q", "a")])
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - {name: r, kind: regex, pattern: x, "
                     "expect: absent}\n")
    done = harness(cluster, suite, data, "-o", tmp_path / "run", RAY_AUTH_MODE="disabled")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-3000:]
    assert "token" in done.stderr and "RAY_AUTH_MODE=token" in done.stderr
    assert not (tmp_path / "run").exists()
