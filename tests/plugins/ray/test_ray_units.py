"""The Ray engine's parts that need no Ray: blocks, numbering, the shared judge windows."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

TESTS = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(TESTS)]

from testutil import chat, write_jsonl  # noqa: E402

from harness.inputs import iter_entries, resolve_inputs  # noqa: E402

pytest.importorskip("harness_ray")

from harness_ray.blocks import END, Records  # noqa: E402
from harness_ray.coordinator import Coordinator, Shares, fair  # noqa: E402
from harness_ray.numbering import Numbering  # noqa: E402
from harness_ray.reading import InputRead, count_prefix, read_input  # noqa: E402
from harness_ray.window import Link, SharedWindow  # noqa: E402


def inputs(folder: Path) -> list[Path]:
    """One input of every kind the core reads, with what it cannot read in them."""
    folder.mkdir()
    lines = write_jsonl(folder / "a.jsonl", [chat("q", "a", id="a0"), "", "{not json",
                                             chat("q", "b", id="a1", n=2 ** 70)])
    packed = folder / "b.jsonl.gz"
    with gzip.open(packed, "wt") as fh:
        fh.write(json.dumps(chat("q", "c", id="b0")) + "\n")
    packed.write_bytes(packed.read_bytes()[:-6])  # cut short: an error after the record
    array = folder / "c.json"
    array.write_text(json.dumps([chat("q", "d", id="c0"), 3, chat("q", "e", id="c1")]))
    table = pa.table({"id": [f"d{i}" for i in range(5)],
                      "conversation": [json.dumps(chat("q", f"r{i}")["messages"])
                                       for i in range(5)],
                      "score": [0.5, None, 1.0, 2.0, 3.0]})
    parquet = folder / "d.parquet"
    pq.write_table(table, parquet, row_group_size=2)
    stream = folder / "e.arrow"
    with pa.ipc.new_stream(stream, table.schema) as writer:
        writer.write_table(table)
    (folder / "f.jsonl").write_text("")
    return [lines, packed, array, parquet, stream, folder / "f.jsonl"]


def comparable(raw: object) -> object:
    return f"error: {raw}" if isinstance(raw, Exception) else raw


@pytest.mark.parametrize("rows", [1, 3, 1000])
def test_blocks_carry_records_as_arrow_columns_the_actor_reads_as_the_core_reads_them(
        tmp_path, rows):
    sources = resolve_inputs(inputs(tmp_path / "in"), messages_column="conversation")
    for n, source in enumerate(sources):
        blocks = list(read_input(InputRead(n, source, rows)))
        got = []
        for block in blocks:
            assert block.num_rows == 1  # a block is what the read task yields, whole
            assert block.schema.field("line").type == pa.list_(pa.binary())
            if source.kind in ("parquet", "arrow"):  # the file's own columns, not a blob
                row = block.schema.field("row").type.value_type
                assert [f.name for f in row] == ["id", "conversation", "score"]
            records = Records(block, "conversation")
            assert len(records.keys()) <= rows + 1
            got += [(position, comparable(raw)) for _, position, raw, _ in records.entries()]
        expected = [(position, comparable(raw)) for position, raw in source.records()]
        assert got == expected
        file, index, kind = Records(blocks[-1]).keys()[-1]
        assert (file, index, kind) == (n, len(expected), END)  # the input's record count


def test_skips_and_limits_keep_the_record_numbers(tmp_path):
    [source] = resolve_inputs([write_jsonl(tmp_path / "a.jsonl",
                                           [chat("q", str(i)) for i in range(10)])])
    read = InputRead(0, source, 4, done={2: frozenset({0}), 7: frozenset()}, stop=8)
    entries = [e for block in read_input(read) for e in Records(block).entries()]
    assert [e[1] for e in entries] == [f"{source.name}:{i}" for i in range(1, 9)]
    assert [sorted(e[3]) for e in entries if e[3]] == [[0]]


def test_seq_is_the_local_numbering_whatever_order_inputs_end_in(tmp_path):
    paths = [write_jsonl(tmp_path / f"{name}.jsonl", [chat("q", str(i)) for i in range(size)])
             for name, size in (("a", 3), ("b", 0), ("c", 4), ("d", 2))]
    sources = resolve_inputs(paths)
    expected = {(s, p) for s, p, _ in iter_entries(sources)}
    from harness.stages import Finished

    numbering = Numbering(len(sources))
    got = set()
    arrivals = [(3, [0, 1]), (2, [0, 1, 2, 3]), (0, [0, 1, 2]), (1, [])]  # last input first
    for file, indexes in arrivals:
        decided = [(file, i, Finished(-1, 0, 1, "pass", f"{sources[file].name}:{i + 1}"))
                   for i in indexes]
        numbering.ended(file, len(indexes))
        got |= {(f.seq, f.source) for f in numbering.number(decided)}
    assert got == expected and numbering.held == 0
    assert count_prefix(sources, 3) == [0, 3, 3, 7]  # counted up to the input past seq 3


def test_window_shares_follow_what_each_actor_asks_for():
    assert fair(64, {"a": 100, "b": 100}) == {"a": 32, "b": 32}
    assert fair(64, {"a": 10, "b": 100}) == {"a": 10, "b": 54}
    assert fair(3, {"a": 5, "b": 5, "c": 0}) == {"a": 2, "b": 1, "c": 0} or \
        fair(3, {"a": 5, "b": 5, "c": 0}) == {"a": 1, "b": 2, "c": 0}
    shares = Shares(8)
    assert shares.sync("a", demand=20, returned=0) == (8, 8)  # alone: the whole window
    assert shares.sync("b", demand=20, returned=0) == (0, 4)  # nothing free yet
    assert shares.sync("a", demand=20, returned=4) == (0, 4)  # a gives back its excess...
    assert shares.sync("b", demand=20, returned=0) == (4, 4)  # ...which b gets
    assert shares.sync("a", demand=0, returned=4) == (0, 0)  # a's block ended
    assert shares.sync("b", demand=20, returned=0) == (4, 8)  # b may use it all


class InProcess:
    """The coordinator reached in-process, as a Ray handle reaches it (``.method.remote``)."""

    def __init__(self, target: Coordinator) -> None:
        self.target = target

    def __getattr__(self, name: str) -> object:
        method = getattr(self.target, name)

        class Remote:
            @staticmethod
            async def remote(*args: object) -> object:
                await asyncio.sleep(0)
                return method(*args)

        return Remote


def test_actors_share_one_window_and_an_ending_block_hands_its_slots_on():
    coordinator = Coordinator()
    handle = InProcess(coordinator)
    a, b = Link(handle, "a"), Link(handle, "b")
    wa, wb = SharedWindow(a, "judge", 4), SharedWindow(b, "judge", 4)
    in_flight: list[int] = []
    state = {"now": 0}

    async def call(window: SharedWindow, release: asyncio.Event) -> None:
        async with window:
            state["now"] += 1
            in_flight.append(state["now"])
            await release.wait()
            state["now"] -= 1

    async def main() -> None:
        release_a, release_b = asyncio.Event(), asyncio.Event()
        calls_a = [asyncio.create_task(call(wa, release_a)) for _ in range(6)]
        calls_b = [asyncio.create_task(call(wb, release_b)) for _ in range(6)]
        for _ in range(50):
            await asyncio.sleep(0.01)
        assert state["now"] == 4  # both actors together keep to the window
        release_a.set()
        await asyncio.gather(*calls_a)
        await a.finish()  # a's block ended: its slots go back
        for _ in range(50):
            await asyncio.sleep(0.01)
        assert wb.busy == 4  # b now holds the whole window
        release_b.set()
        await asyncio.gather(*calls_b)
        await b.finish()

    asyncio.run(main())
    assert max(in_flight) == 4
    assert sum(s.free for s in coordinator.windows.values()) == 4  # every slot back


def test_an_input_a_read_task_cannot_see_stops_the_run_rather_than_erring_one_record(
        tmp_path):
    """The driver saw the file; where a read task runs it is missing or another file: that is
    the cluster's setup, not a broken record, so reading raises instead of yielding an error
    record (read tasks run on the driver's node; this guards the other cases)."""
    from harness_ray.reading import InputNotVisible, local_stat

    path = write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")])
    [source] = resolve_inputs([path])
    size, mtime = local_stat(source)
    for stat, why in (((size + 1, mtime), "is another file"), ((size, mtime), "cannot be read")):
        if why == "cannot be read":
            path.unlink()
        with pytest.raises(InputNotVisible, match=why):
            list(read_input(InputRead(0, source, 10, stat=stat)))
