"""The run's coordinator: one small Ray actor that every reviewing actor talks to.

It holds what the actors share:

- **each judge's window** (``max_concurrency`` calls in flight for the whole cluster): slots are
  leased to the actors in proportion to what they ask for (:func:`fair`), so an actor whose
  block is ending hands its idle slots to one that has calls waiting;
- **the ledger** of ``--max-cost``: what the cluster's judge calls cost;
- **block attempts**: how often a block was started, so that a block that keeps killing its
  actor (a record that crashes a model) stops the run instead of being retried forever.

Actors talk to it with :meth:`Coordinator.sync` now and then (every few tens of milliseconds
while they judge, and when they need more slots), never once per judge call.
"""

from __future__ import annotations

from collections import Counter


def fair(capacity: int, demands: dict[str, int]) -> dict[str, int]:
    """Each actor's share of ``capacity`` slots: what it asks for, or an equal share of what is
    left when they ask for more than there is (water-filling, in whole slots)."""
    out = dict.fromkeys(demands, 0)
    left = capacity
    pending = sorted((d, a) for a, d in demands.items() if d > 0)
    while pending and left > 0:
        share = max(1, left // len(pending))
        still = []
        for demand, actor in pending:
            give = min(demand - out[actor], share, left)
            out[actor] += give
            left -= give
            if out[actor] < demand:
                still.append((demand, actor))
        pending = still
    return out


class Shares:
    """One judge's window: the slots each actor holds, and what each asked for last."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held: dict[str, int] = {}
        self.demand: dict[str, int] = {}

    @property
    def free(self) -> int:
        return self.capacity - sum(self.held.values())

    def sync(self, actor: str, demand: int, returned: int) -> tuple[int, int]:
        """An actor gives back ``returned`` slots and asks for ``demand`` (calls in flight and
        waiting); the slots granted to it now, and the share it should keep to."""
        held = max(0, self.held.get(actor, 0) - returned)
        self.held[actor] = held
        self.demand[actor] = min(demand, self.capacity)
        target = fair(self.capacity, self.demand)[actor]
        grant = max(0, min(self.free, target - held))
        self.held[actor] = held + grant
        if demand == 0 and self.held[actor] == 0:
            del self.held[actor], self.demand[actor]
        return grant, target

    def forget(self, actor: str) -> None:
        """A restarted actor: what its previous life held is free again."""
        self.held.pop(actor, None)
        self.demand.pop(actor, None)


class Coordinator:
    """The run's shared state (made a Ray actor with ``ray.remote``; see the module doc)."""

    def __init__(self) -> None:
        self.windows: dict[str, Shares] = {}
        self.spent = 0.0
        self.starts: Counter[str] = Counter()

    def sync(self, actor: str, windows: dict[str, tuple[int, int, int, bool]],
             cost: float) -> tuple[dict[str, tuple[int, int]], float]:
        """``windows``: judge -> ``(capacity, demand, returned, fresh)`` from one actor
        (``fresh``: the window's first sync since the actor started); adds ``cost`` to the
        ledger. Returns judge -> ``(granted, share)`` and what the cluster has spent."""
        self.spent += cost
        reply = {}
        for key, (capacity, demand, returned, fresh) in windows.items():
            shares = self.windows.setdefault(key, Shares(capacity))
            if fresh:
                shares.forget(actor)
            reply[key] = shares.sync(actor, demand, returned)
        return reply, self.spent

    def started(self, block: str) -> int:
        """How many times ``block`` was started, this time included."""
        self.starts[block] += 1
        return self.starts[block]
