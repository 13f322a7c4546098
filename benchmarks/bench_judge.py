"""Judge throughput and client CPU against a local OpenAI-compatible endpoint.

The endpoint is an aiohttp server in its own process (this script with ``--serve``) answering
every chat completion after a latency drawn from a seeded sequence (the same sequence for every
contender: ``POST /reset`` rewinds it). Three scenarios:

- ``fixed``: 50 ms per answer, concurrency 64;
- ``lognormal``: median 500 ms, sigma 1 (a long tail), concurrency 256;
- ``tpm``: 50 ms per answer, concurrency 64, and a tokens-per-minute limit the endpoint enforces
  (each answer costs the 415 tokens its usage reports; past the limit, a 429 with
  ``Retry-After``), with a "minute" of 2 s so that a run outlasts several: ``harness`` with and
  without ``tokens_per_minute`` set at the limit (the judge's minute shortened the same way),
  with the 429s met and the tokens per second once the first minute's burst is spent, as a
  share of the limit;

each over ``--n`` transcripts (default 1,500). Contenders, side by side:

- ``harness``: a judge-only suite (one ``llm_judge`` criterion, ``max_concurrency`` = the
  scenario's, no cache so every judgement is a call) through ``harness.Engine(suite).review``;
- ``bare aiohttp``: the floor, a plain aiohttp loop posting the same prompts at the same
  concurrency on the same endpoint and reading the JSON;
- ``inspect-ai`` (when importable, or from ``--inspect-python``, another interpreter that has
  it): ``inspect_ai.eval`` of a one-``generate()`` task on the same prompts and endpoint, with
  ``max_connections`` = the concurrency (its own process; its CPU is that process's).

It prints judgements per second, the ratio to the bare loop, and the client CPU per judgement
(``time.process_time`` of the client process). Then the client CPU per call of the judge's HTTP
client alone (``OpenAIBackend.complete``, 2,000 calls, concurrency 16, no latency) and of a whole
judgement (``LLMJudge.evaluate_async``: rendering, client, parsing, soft score, verdict), next to
a bare aiohttp post of the same body.

    python benchmarks/bench_judge.py [--n 1500] [--scenarios fixed lognormal] [--no-inspect]
                                     [--inspect-python PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

ANSWER = "The answer is correct, clear and addresses the question.\nVERDICT: PASS"
SCENARIOS = {
    "fixed": {"latency": "fixed", "median": 0.05, "sigma": 0.0, "concurrency": 64},
    "lognormal": {"latency": "lognormal", "median": 0.5, "sigma": 1.0, "concurrency": 256},
    "tpm": {"latency": "fixed", "median": 0.05, "sigma": 0.0, "concurrency": 64,
            "tpm": 80_000, "period": 2.0},
}


# --- the endpoint (a separate process) -----------------------------------------------------------
def _completion(body: dict[str, Any]) -> dict[str, Any]:
    tokens = ["The", " answer", " is", " correct", ",", " clear", " and", " addresses", " the",
              " question", ".", "\n", "VERDICT", ":", " PASS"]
    logprobs = None
    if body.get("logprobs"):
        top_n = int(body.get("top_logprobs") or 0)
        content = []
        for tok in tokens:
            alts = [{"token": tok, "logprob": -0.01, "bytes": None},
                    {"token": " FAIL", "logprob": -4.6, "bytes": None}]
            content.append({"token": tok, "logprob": -0.01, "bytes": None,
                            "top_logprobs": alts[:top_n]})
        logprobs = {"content": content, "refusal": None}
    return {
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
        "model": body.get("model", "bench"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                     "logprobs": logprobs, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 400, "completion_tokens": len(tokens), "total_tokens": 415},
    }


def serve(latency: str, median: float, sigma: float, seed: int, tpm: int = 0,
          period: float = 60.0) -> None:
    """Run the endpoint; print its base URL; answer until killed. With ``tpm``, answer at most
    that many tokens per ``period`` seconds (a bucket refilled continuously), else a 429."""
    import orjson
    from aiohttp import web

    state: dict[str, Any] = {"rng": random.Random(seed)}
    limit = {"level": float(tpm), "at": time.monotonic(), "throttled": 0, "admitted": []}

    def take(tokens: int) -> float:
        """0 when the limit allows ``tokens`` now (taken), else the seconds until it would."""
        now, rate = time.monotonic(), tpm / period
        level = min(float(tpm), limit["level"] + (now - limit["at"]) * rate)
        limit["at"] = now
        if level < tokens:
            limit["level"] = level
            limit["throttled"] += 1
            return (tokens - level) / rate
        limit["level"] = level - tokens
        limit["admitted"].append((now, tokens))
        return 0.0

    def delay() -> float:
        if latency == "fixed":
            return median
        return median * math.exp(state["rng"].gauss(0.0, sigma))

    async def completions(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        answer = _completion(body)
        if tpm and (refused := take(answer["usage"]["total_tokens"])):
            headers = {"Retry-After": str(math.ceil(refused)),
                       "retry-after-ms": str(math.ceil(refused * 1000))}
            error = {"error": {"message": "Rate limit reached for tokens per min (TPM)",
                               "code": "rate_limit_exceeded"}}
            return web.Response(status=429, body=orjson.dumps(error), headers=headers,
                                content_type="application/json")
        wait = delay()
        if wait > 0:
            await asyncio.sleep(wait)
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def reset(request: web.Request) -> web.Response:
        state["rng"] = random.Random(seed)
        limit.update(level=float(tpm), at=time.monotonic(), throttled=0, admitted=[])
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({k: limit[k] for k in ("throttled", "admitted")}),
                            content_type="application/json")

    async def main() -> None:
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_post("/v1/chat/completions", completions)
        app.router.add_post("/reset", reset)
        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"http://127.0.0.1:{port}/v1", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class Endpoint:
    """The endpoint process for one scenario."""

    def __init__(self, latency: str, median: float, sigma: float, seed: int = 0,
                 tpm: int = 0, period: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", latency, str(median), str(sigma), str(seed),
             str(tpm), str(period)],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()

    def reset(self) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - local endpoint
            self.base_url.removesuffix("/v1") + "/reset", method="POST")).read()

    def stats(self) -> dict[str, Any]:
        """The limit's counts since the last reset: ``throttled``, ``admitted``."""
        import urllib.request

        with urllib.request.urlopen(  # noqa: S310 - local endpoint
                self.base_url.removesuffix("/v1") + "/stats") as resp:
            return json.loads(resp.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


# --- data and the judge --------------------------------------------------------------------------
def registry() -> Any:
    from harness.plugins import build_registry, load_plugins

    pm = load_plugins()
    for name in ("harness_criteria.llm_judge", "harness.judges.backends"):
        if not pm.has_plugin(name):
            pm.register(importlib.import_module(name), name=name)
    return build_registry(pm)


def transcripts(n: int, offset: int = 0) -> list[Any]:
    from harness import Message, Transcript

    return [
        Transcript(
            id=f"t{offset + i}",
            messages=[
                Message(role="user", content=f"Question {offset + i}: what is {i} + {i}? "
                                             "Please show the steps."),
                Message(role="assistant", content=f"It is {2 * i}: add {i} to {i}. "
                                                  "Please ask again anytime."),
            ],
        )
        for i in range(n)
    ]


def suite_file(folder: Path, base_url: str, concurrency: int, extra: str = "") -> Path:
    path = folder / "suite.yaml"
    path.write_text(
        "name: bench-judge\n"
        f"judge:\n  name: openai/bench\n  base_url: {base_url}\n"
        f"  max_concurrency: {concurrency}\n  timeout_s: 120\n{extra}"
        "criteria:\n  - name: helpful\n    kind: llm_judge\n    rubric_file: helpfulness\n"
    )
    return path


# --- contenders ----------------------------------------------------------------------------------
def run_harness(endpoint: Endpoint, n: int, concurrency: int, extra: str = "") -> dict[str, Any]:
    from harness import Engine

    with tempfile.TemporaryDirectory() as tmp:
        suite = suite_file(Path(tmp), endpoint.base_url, concurrency, extra)
        with Engine(suite, registry()) as engine:  # no cache_dir: every judgement calls
            list(engine.review(transcripts(min(n, concurrency), offset=10**6)))  # warm-up
            endpoint.reset()
            items = transcripts(n)
            cpu0, t0 = time.process_time(), time.perf_counter()
            decisions = list(engine.review(items))
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    outcomes = {o: sum(d.outcome == o for d in decisions) for o in ("pass", "fail", "error")}
    assert outcomes["pass"] + outcomes["error"] == n, outcomes
    return {"per_s": n / wall, "wall_s": wall, "cpu_ms": cpu / n * 1000,
            "errored": outcomes["error"]}


def prompts(endpoint: Endpoint, n: int) -> list[bytes]:
    """The exact request bodies the harness sends for the benchmark's transcripts."""
    import orjson

    from harness import Engine

    with tempfile.TemporaryDirectory() as tmp:
        suite = suite_file(Path(tmp), endpoint.base_url, 1)
        with Engine(suite, registry()) as engine:
            judge = engine.criteria[0]
            backend = judge.runner.backend
            bodies = [backend.body(judge.render(t, 0)[0]) for t in transcripts(n)]
    assert all(orjson.loads(b)["messages"] for b in bodies[:1])
    return bodies


def run_bare(endpoint: Endpoint, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    import aiohttp
    import orjson

    async def main() -> tuple[float, float]:
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            url = endpoint.base_url + "/chat/completions"
            sem = asyncio.Semaphore(concurrency)

            async def one(body: bytes) -> str:
                async with sem, session.post(url, data=body) as resp:
                    data = orjson.loads(await resp.read())
                return data["choices"][0]["message"]["content"]

            await asyncio.gather(*(one(b) for b in bodies[:concurrency]))  # warm-up
            endpoint.reset()
            cpu0, t0 = time.process_time(), time.perf_counter()
            texts = await asyncio.gather(*(one(b) for b in bodies))
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            assert all(t.endswith("VERDICT: PASS") for t in texts)
            return wall, cpu

    wall, cpu = asyncio.run(main())
    n = len(bodies)
    return {"per_s": n / wall, "wall_s": wall, "cpu_ms": cpu / n * 1000}


def run_inspect(
    endpoint: Endpoint, bodies: list[bytes], concurrency: int, python: str
) -> dict[str, Any]:
    """inspect-ai in a child process (its own imports and logging): one generate() per sample."""
    import orjson

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "prompts.json"
        data.write_bytes(orjson.dumps([orjson.loads(b)["messages"] for b in bodies]))
        out = subprocess.run(
            [python, __file__, "--inspect-child", endpoint.base_url, str(data),
             str(concurrency), tmp],
            capture_output=True, text=True, check=False,
        )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def inspect_child(base_url: str, data: str, concurrency: int, log_dir: str) -> None:
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig
    from inspect_ai.solver import generate

    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    os.environ["OPENAI_BASE_URL"] = base_url
    conversations = json.loads(Path(data).read_text())

    def sample(i: int, msgs: list[dict[str, str]]) -> Sample:
        chat = [ChatMessageSystem(content=m["content"]) if m["role"] == "system"
                else ChatMessageUser(content=m["content"]) for m in msgs]
        return Sample(id=i, input=chat)

    def task(items: list[list[dict[str, str]]]) -> Task:
        return Task(dataset=[sample(i, m) for i, m in enumerate(items)], solver=generate())

    config = GenerateConfig(max_connections=concurrency, max_tokens=512, temperature=0.0,
                            logprobs=True, top_logprobs=5, max_retries=0)
    kwargs = {"model": "openai/bench", "model_args": {"responses_api": False},  # chat API
              "log_dir": log_dir, "display": "none", "max_samples": concurrency,
              "log_level": "error"}
    eval(task(conversations[:concurrency]), **kwargs, **config.model_dump(exclude_none=True))
    urllib_reset(base_url)
    cpu0, t0 = time.process_time(), time.perf_counter()
    (log,) = eval(task(conversations), **kwargs, **config.model_dump(exclude_none=True))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert log.status == "success", log.status
    n = len(conversations)
    print(json.dumps({"per_s": n / wall, "wall_s": wall, "cpu_ms": cpu / n * 1000}))


def urllib_reset(base_url: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - local endpoint
        base_url.removesuffix("/v1") + "/reset", method="POST")).read()


# --- client CPU per call -------------------------------------------------------------------------
def client_cpu(endpoint: Endpoint, calls: int = 2000, concurrency: int = 16,
               repeats: int = 3) -> dict[str, float]:
    """CPU ms per call (best of ``repeats``, no endpoint latency): a bare aiohttp post of the
    same body, the judge's HTTP client alone, and a whole judgement."""
    import aiohttp
    import orjson

    from harness import Engine

    items = transcripts(calls)
    with tempfile.TemporaryDirectory() as tmp:
        suite = suite_file(Path(tmp), endpoint.base_url, concurrency)
        with Engine(suite, registry()) as engine:
            judge = engine.criteria[0]
            backend = judge.runner.backend
            requests = [judge.render(t, 0)[0] for t in items]
            bodies = [backend.body(r) for r in requests]

            async def measure() -> dict[str, float]:
                sem = asyncio.Semaphore(concurrency)
                url = endpoint.base_url + "/chat/completions"
                headers = {"Content-Type": "application/json", "Authorization": "Bearer sk"}
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                headers=headers)

                async def bare(body: bytes) -> Any:
                    async with sem, session.post(url, data=body) as resp:
                        return orjson.loads(await resp.read())

                async def client(req: Any) -> Any:
                    async with sem:
                        return await backend.complete(req)

                runs = {"bare aiohttp": (bare, bodies), "HTTP client": (client, requests),
                        "judgement": (judge.evaluate_async, items)}
                best = dict.fromkeys(runs, math.inf)
                for _ in range(repeats):
                    for name, (fn, args) in runs.items():
                        await asyncio.gather(*(fn(a) for a in args[:200]))  # warm-up
                        cpu0 = time.process_time()
                        await asyncio.gather(*(fn(a) for a in args))
                        best[name] = min(best[name], (time.process_time() - cpu0) / calls * 1000)
                await session.close()
                await judge.runner.aclose()
                return best

            return asyncio.run(measure())


def tpm_scenario(sc: dict[str, Any], n: int) -> None:
    """The endpoint with a tokens-per-minute limit: harness without and with the option."""
    from harness.judges import ratelimit

    tpm, period, conc = sc["tpm"], sc["period"], sc["concurrency"]
    rate = tpm / period
    print(f"\ntpm: 50 ms fixed, concurrency {conc}, a limit of {tpm:,} tokens per \"minute\" "
          f"of {period:g} s ({rate:,.0f} tokens/s: {rate / 415:.0f} judgements/s)")
    print(f"  {'contender':<22} {'judg/s':>7} {'seconds':>8} {'429s':>12} {'errors':>7} "
          f"{'tokens/s vs limit':>18} {'client CPU ms/judg':>19}")
    ratelimit.MINUTE_S = period  # the judge's minute, like the endpoint's
    endpoint = Endpoint(sc["latency"], sc["median"], sc["sigma"], tpm=tpm, period=period)
    try:
        for who, extra in (("harness", ""),
                           ("harness, tokens_per_min", f"  tokens_per_minute: {tpm}\n")):
            r = run_harness(endpoint, n, conc, extra)
            stats = endpoint.stats()
            admitted, throttled = stats["admitted"], stats["throttled"]
            start = admitted[0][0] + period  # once the first minute's burst is spent
            late = sum(tokens for t, tokens in admitted if t > start)
            share = late / max(1e-9, admitted[-1][0] - start) / rate
            refused = f"{throttled} ({throttled / (throttled + len(admitted)):.0%})"
            print(f"  {who:<22} {r['per_s']:>7.1f} {r['wall_s']:>8.2f} {refused:>12} "
                  f"{r['errored']:>7} {share:>18.2f} {r['cpu_ms']:>19.3f}")
    finally:
        endpoint.close()
        ratelimit.MINUTE_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500, help="transcripts per run")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--no-inspect", action="store_true", help="skip inspect-ai")
    parser.add_argument("--inspect-python", help="a Python that has inspect-ai installed")
    parser.add_argument("--serve", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--inspect-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        latency, median, sigma, seed, tpm, period = args.serve
        serve(latency, float(median), float(sigma), int(seed), int(tpm), float(period))
        return
    if args.inspect_child:
        url, data, conc, log_dir = args.inspect_child
        inspect_child(url, data, int(conc), log_dir)
        return
    inspect_python = args.inspect_python
    if inspect_python is None:
        try:
            import inspect_ai  # noqa: F401

            inspect_python = sys.executable
        except ImportError:
            pass
    with_inspect = inspect_python is not None and not args.no_inspect
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {args.n} transcripts per run; "
          "the endpoint is a separate process")
    for name in args.scenarios:
        sc = SCENARIOS[name]
        if "tpm" in sc:
            tpm_scenario(sc, args.n)
            continue
        endpoint = Endpoint(sc["latency"], sc["median"], sc["sigma"])
        try:
            conc = sc["concurrency"]
            latency = (f"{sc['median'] * 1000:.0f} ms fixed" if sc["latency"] == "fixed" else
                       f"lognormal, median {sc['median'] * 1000:.0f} ms, sigma {sc['sigma']:g}")
            print(f"\n{name}: {latency}, concurrency {conc}")
            print(f"  {'contender':<14} {'judg/s':>8} {'seconds':>8} {'vs bare':>8} "
                  f"{'client CPU ms/judg':>19}")
            bodies = prompts(endpoint, args.n)
            results = {"bare aiohttp": run_bare(endpoint, bodies, conc),
                       "harness": run_harness(endpoint, args.n, conc)}
            assert results["harness"]["errored"] == 0, results["harness"]
            if with_inspect:
                try:
                    results["inspect-ai"] = run_inspect(endpoint, bodies, conc, inspect_python)
                except Exception as exc:  # noqa: BLE001 - optional contender
                    print(f"  (inspect-ai failed: {exc})")
            floor = results["bare aiohttp"]["per_s"]
            for who, r in results.items():
                print(f"  {who:<14} {r['per_s']:>8.1f} {r['wall_s']:>8.2f} "
                      f"{r['per_s'] / floor:>8.2f} {r['cpu_ms']:>19.3f}")
        finally:
            endpoint.close()
    endpoint = Endpoint("fixed", 0.0, 0.0)
    try:
        cpu = client_cpu(endpoint)
    finally:
        endpoint.close()
    print(f"\nclient CPU per call, no endpoint latency, 2000 calls, concurrency 16, best of 3:\n"
          f"  bare aiohttp post + orjson            {cpu['bare aiohttp']:.3f} ms\n"
          f"  HTTP client (OpenAIBackend.complete)  {cpu['HTTP client']:.3f} ms\n"
          f"  whole judgement (evaluate_async)      {cpu['judgement']:.3f} ms")


if __name__ == "__main__":
    main()
