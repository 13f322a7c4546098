"""The content-addressed judge cache: keys, re-runs without calls, concurrent writers."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from chat_server import ChatServer
from hypothesis import given, settings
from hypothesis import strategies as st
from judgeutil import arun, arun_all

from harness.canonical import canonical_bytes, canonical_json
from harness.judges.base import JudgeRequest, JudgeResponse
from harness.judges.cache import JudgeCache, cache_key, load_or_create_secret
from harness.judges.openai_backend import OpenAIBackend
from harness.judges.prompting import make_nonce
from harness.judges.runner import JudgeRunner, RetryPolicy

IDENTITY = {"name": "openai/m", "model": "m", "base_url": "http://x/v1"}
REQ = JudgeRequest(messages=[{"role": "user", "content": "judge A"}])


def test_key_changes_with_everything_that_changes_the_answer() -> None:
    base = cache_key(IDENTITY, REQ)
    assert base == cache_key(dict(reversed(list(IDENTITY.items()))), REQ)  # order-independent
    variants = [
        cache_key({**IDENTITY, "model": "m2"}, REQ),
        cache_key({**IDENTITY, "base_url": "http://y/v1"}, REQ),
        cache_key(
            IDENTITY, REQ.model_copy(update={"messages": [{"role": "user", "content": "B"}]})
        ),
        cache_key(IDENTITY, REQ.model_copy(update={"temperature": 0.7})),
        cache_key(IDENTITY, REQ.model_copy(update={"max_tokens": 10})),
        cache_key(IDENTITY, REQ.model_copy(update={"seed": 1})),
        cache_key(IDENTITY, REQ, repeat=1),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_keys_and_nonces_of_earlier_versions_still_match() -> None:
    # computed by the version before keys went through orjson: caches made then stay valid
    request = JudgeRequest(messages=[{"role": "system", "content": "Grade: «ok» ✓ \x07"},
                                     {"role": "user", "content": "judge A"}],
                           temperature=0.7, seed=2)
    extra = {"prefix": "VERDICT:", "continuations": [" PASS", " FAIL"]}
    assert cache_key(IDENTITY, request, repeat=2, extra=extra) == (
        "ef970577a0dd3be650631f5fe7a1eee4b6a39adf09622402946b7b86d9f2b680")
    content = {"messages": [{"role": "user", "content": "é"}], "metadata": {"x": 1e-05}}
    assert make_nonce(b"k" * 32, content, "crit", 0) == "30ce3032bb1ea05b"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_canonical_bytes_are_the_canonical_json(value: object) -> None:
    try:
        expected = canonical_json(value).encode()
    except UnicodeEncodeError:  # a lone surrogate: no key either way
        return
    assert canonical_bytes(value) == expected


def test_rerun_makes_zero_calls(chat_server: ChatServer, tmp_path: Path) -> None:
    judge = OpenAIBackend("m", {"base_url": chat_server.base_url})
    requests = [JudgeRequest(messages=[{"role": "user", "content": f"item {i}"}]) for i in range(5)]
    first = JudgeRunner(judge, cache=JudgeCache(tmp_path))
    out1 = arun_all((first.complete(r) for r in requests), first)
    assert chat_server.completions == 5

    again = JudgeRunner(judge, cache=JudgeCache(tmp_path))  # a new run, same cache directory
    out2 = arun_all((again.complete(r) for r in requests), again)
    assert chat_server.completions == 5
    assert again.calls == 0
    assert [r[0] for r in out1] == [r[0] for r in out2]
    assert all(record.cached and record.attempts == 0 for _, record in out2)

    # A changed prompt is a miss; repeats are distinct entries.
    arun(again.complete(requests[0], repeat=1), again)
    assert chat_server.completions == 6


def test_failures_are_not_cached(chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.fail_first(1, status=400, retry_after=None)
    judge = OpenAIBackend("m", {"base_url": chat_server.base_url})
    runner = JudgeRunner(judge, cache=JudgeCache(tmp_path), policy=RetryPolicy(max_attempts=1))
    assert isinstance(arun_all([runner.complete(REQ)], runner)[0], Exception)
    response, record = arun(runner.complete(REQ), runner)
    assert not record.cached and response.text
    assert chat_server.completions == 2


def test_concurrent_writers_threads_and_processes(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path)

    def write(worker: int) -> None:
        other = JudgeCache(tmp_path)  # separate object, separate connections
        for i in range(50):
            req = JudgeRequest(messages=[{"role": "user", "content": f"{worker}-{i}"}])
            key = other.key(IDENTITY, req)
            other.put(key, JudgeResponse(text=f"VERDICT: PASS {worker}-{i}", model="m"))
            assert other.get(key) is not None

    script = (
        "import sys; from harness.judges.cache import JudgeCache;"
        "from harness.judges.base import JudgeResponse;"
        "c = JudgeCache(sys.argv[1]);"
        "[c.put(f'proc-{i}', JudgeResponse(text='x', model='m')) for i in range(100)]"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], cwd=Path(__file__).parents[2]
    )
    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert proc.wait(timeout=60) == 0
    assert len(cache) == 6 * 50 + 100


def test_nonce_secret_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "judge-nonce.key"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert load_or_create_secret(path) == first
    assert path.stat().st_mode & 0o077 == 0
    assert JudgeCache(tmp_path / "sub").nonce_key() == first
