"""Fewer collector passes while a stream runs, and the caller's settings back after it."""

from __future__ import annotations

import gc

from testutil import write_suite

from harness import Engine, Message, Transcript
from harness.collector import THRESHOLDS, fewer_collections


def test_blocks_share_one_setting_and_restore_the_callers():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0
        with fewer_collections():
            assert gc.get_threshold() == THRESHOLDS
        assert gc.get_threshold() == THRESHOLDS  # the outer block still runs
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_stream_collects_less_only_while_it_runs(tmp_path):
    suite = write_suite(tmp_path / "suite.yaml", """
name: s
criteria:
  - {name: polite, kind: regex, pattern: "stupid", expect: absent}
""")
    before = gc.get_threshold()
    seen = []
    transcripts = [Transcript(id=str(n), messages=[Message(role="user", content="hi")])
                   for n in range(3)]
    with Engine(suite) as engine:
        for decision in engine.review(transcripts):
            seen.append((decision.outcome, gc.get_threshold()))
    assert seen == [("pass", THRESHOLDS)] * 3
    assert gc.get_threshold() == before
