"""The rate limiter's buckets and the adaptive in-flight window, on a fake clock (no sleeps)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from harness.judges.base import JudgeRequest
from harness.judges.ratelimit import RateLimiter, RateLimits, TokenBucket, Window


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def request(content: str = "x" * 400, max_tokens: int = 100) -> JudgeRequest:
    return JudgeRequest(messages=[{"role": "user", "content": content}], max_tokens=max_tokens)


# --- the bucket ----------------------------------------------------------------------------------
def test_bucket_reserves_in_order_and_refills_continuously() -> None:
    clock = Clock()
    bucket = TokenBucket(60, 60.0, clock=clock)  # 1 unit a second
    assert bucket.take(30) == 0 and bucket.take(30) == 0  # a full bucket: a minute's worth
    assert bucket.take(10) == pytest.approx(10.0)  # empty: wait until 10 have come back
    assert bucket.take(5) == pytest.approx(15.0)  # and the next one after it
    clock.now += 15.0
    assert bucket.level() == pytest.approx(0.0)
    clock.now += 7.5
    assert bucket.level() == pytest.approx(7.5)  # continuously, not a minute at a time
    clock.now += 3600.0
    assert bucket.level() == 60.0  # never above its capacity


def test_bucket_refunds_and_charges() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 10.0, clock=clock)
    bucket.take(80)
    bucket.give(50)  # the answer used 30 of the 80 taken
    assert bucket.level() == pytest.approx(70.0)
    bucket.give(-90)  # a charge: it used more than taken
    assert bucket.take(0) == pytest.approx(2.0)  # 20 short at 10 a second
    bucket.give(1000)
    assert bucket.level() == 100.0


def test_a_call_larger_than_the_bucket_waits_for_a_full_one() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 10.0, clock=clock)
    bucket.take(50)
    assert bucket.take(1000) == pytest.approx(5.0)  # until full again, not forever


def test_limits_must_be_positive() -> None:
    assert not RateLimits().limited
    assert RateLimits(tokens_per_minute=1).limited
    with pytest.raises(ValidationError):
        RateLimits(tokens_per_minute=0)
    with pytest.raises(ValidationError):
        RateLimits(requests_per_minute=10, tokens_per_minut=5)


# --- the limiter ---------------------------------------------------------------------------------
def test_estimate_is_prompt_bytes_over_four_plus_max_tokens() -> None:
    limiter = RateLimiter(RateLimits(tokens_per_minute=10_000))
    assert limiter.estimate(request("x" * 400, max_tokens=100)) == 100 + 4 + 100
    # non-ASCII text counts its UTF-8 bytes: a Chinese character is about a token, not 1/4
    assert limiter.estimate(request("好" * 100, max_tokens=0)) == 75 + 4
    assert RateLimiter(RateLimits(requests_per_minute=5)).estimate(request()) == 0
    small = RateLimiter(RateLimits(tokens_per_minute=150))
    assert small.estimate(request()) == 150  # at most a full bucket, else it would wait forever


def test_settle_refunds_what_the_answer_did_not_use() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimits(tokens_per_minute=1000), period_s=1.0, clock=clock)
    assert limiter.tokens is not None
    tokens = limiter.estimate(request())  # 204
    limiter.reserve(tokens)
    limiter.settle(tokens, used=120)
    assert limiter.tokens.level() == pytest.approx(1000 - 120)
    limiter.reserve(tokens)
    limiter.settle(tokens, used=300)  # more than estimated: the difference is charged
    assert limiter.tokens.level() == pytest.approx(1000 - 420)
    limiter.reserve(tokens)
    limiter.cancel(tokens)  # never sent
    assert limiter.tokens.level() == pytest.approx(1000 - 420)


def test_estimate_learns_an_endpoints_tokens_per_byte_upwards_only() -> None:
    limiter = RateLimiter(RateLimits(tokens_per_minute=10**6))
    digits = request("1 2 3 4 " * 50, max_tokens=0)  # 400 bytes; a tokenizer may make 400 tokens
    before = limiter.estimate(digits)
    for _ in range(30):
        limiter.settle(before, used=400, prompt_tokens=400, request=digits)
    assert limiter.estimate(digits) > 3 * before
    cheap = RateLimiter(RateLimits(tokens_per_minute=10**6))
    for _ in range(30):  # fewer tokens than bytes / 4: the estimate stays at bytes / 4
        cheap.settle(before, used=50, prompt_tokens=50, request=digits)
    assert cheap.estimate(digits) == before


def test_requests_per_minute_spaces_calls_after_the_first_minutes_worth() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimits(requests_per_minute=3), period_s=3.0, clock=clock)
    assert [limiter.reserve(0) for _ in range(5)] == pytest.approx([0, 0, 0, 1.0, 2.0])


def test_both_limits_wait_for_the_later() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimits(requests_per_minute=60, tokens_per_minute=600),
                          period_s=60.0, clock=clock)
    assert limiter.reserve(600) == 0
    assert limiter.reserve(30) == pytest.approx(3.0)  # tokens: 30 at 10 a second


# --- the window ----------------------------------------------------------------------------------
def test_window_halves_once_per_round_of_429s_and_grows_one_slot_per_window() -> None:
    window = Window(8)
    assert window.size == 8
    sent_at = window.epoch
    assert window.throttled(sent_at)  # the first 429 of a round halves it
    assert window.size == 4
    assert not window.throttled(sent_at)  # calls sent before that decrease: not again
    assert window.size == 4
    assert window.throttled(window.epoch)  # a 429 to a call sent since: again
    assert window.size == 2
    for _ in range(5):
        window.throttled(window.epoch)
    assert window.size == 1  # never under one call
    grown = []
    for _ in range(40):
        window.succeeded()
        grown.append(int(window.size))
    # additive: +1 / size a success, so one more slot per window of successes
    assert grown[:4] == [2, 2, 2, 3] and int(window.size) < 9
    for _ in range(200):
        window.succeeded()
    assert window.size == 8  # never over max_concurrency


def test_window_slots_queue_first_come_first_served_and_follow_its_size() -> None:
    async def main() -> None:
        window = Window(2)
        await window.acquire()
        await window.acquire()
        order: list[int] = []

        async def wait(i: int) -> None:
            await window.acquire()
            order.append(i)

        waiting = [asyncio.create_task(wait(i)) for i in range(3)]
        await asyncio.sleep(0)
        assert order == [] and window.in_flight == 2
        window.throttled(window.epoch)  # size 1: a release frees no slot while 2 are in flight
        window.release()
        await asyncio.sleep(0)
        assert order == []
        window.release()
        await asyncio.sleep(0)
        assert order == [0] and window.in_flight == 1
        waiting[1].cancel()  # a waiter that gives up takes no slot
        await asyncio.sleep(0)
        window.succeeded()  # 1 + 1 = 2 slots: the next waiter, not the cancelled one
        await asyncio.sleep(0)
        assert order == [0, 2] and window.in_flight == 2
        window.release()
        window.release()
        assert window.in_flight == 0

    asyncio.run(main())
