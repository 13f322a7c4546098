"""Exporting a run that is still running says to wait for it, not to resume it (a second run on
the directory would be refused: it is in use)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))

from chat_server import ChatServer  # noqa: E402
from exportutil import write_jsonl  # noqa: E402


def test_exporting_a_run_in_progress_says_to_wait(tmp_path, cli):
    server = ChatServer(latency_s=0.2).start()
    try:
        suite = tmp_path / "suite.yaml"
        suite.write_text(f"""\
name: slow
judge: {{name: openai/j, base_url: "{server.base_url}", max_concurrency: 1}}
criteria:
  - name: fine
    kind: llm_judge
    rubric: "Is this fine? {{{{ last_assistant }}}}"
""")
        data = write_jsonl(tmp_path / "in.jsonl", [
            {"id": str(i), "messages": [{"role": "user", "content": f"question {i}"},
                                        {"role": "assistant", "content": f"answer {i}"}]}
            for i in range(60)])
        run_dir = tmp_path / "run"
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(suite),
                                 str(data), "-o", str(run_dir), "--no-progress"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while server.completions < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert json.loads((run_dir / "run.json").read_text())["state"] == "running"
            for args in (("export", run_dir, "-o", tmp_path / "x.jsonl"),
                         ("report", run_dir)):
                code, _, err = cli(*args)
                assert code == 2, args
                assert f"pid {proc.pid}" in err and "wait for it to finish" in err, err
                assert "--resume" not in err, err
        finally:
            proc.kill()
            proc.wait(timeout=30)
        # killed: nothing holds the directory any more, and --resume is the way on
        code, _, err = cli("export", run_dir, "-o", tmp_path / "x.jsonl")
        assert code == 2 and "--resume" in err
    finally:
        server.stop()
