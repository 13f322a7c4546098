"""The Ray execution engine: ``harness run SUITE INPUT... -o RUN_DIR --engine ray``.

Ray Data reads the inputs (one read task per file, with the core's reader, on the driver's
node) into Arrow blocks, and ``map_batches`` runs the core (:class:`harness.engine.Engine`,
built once per actor) on an actor pool; the actors share each judge's window and the
``--max-cost`` ledger through one coordinator actor. The decisions come back to the driver,
which numbers them and journals them in the run directory like a local run. Ray is imported only
when the engine starts, so ``harness`` works without it.
"""

from __future__ import annotations

import argparse
from typing import Any

from harness.argtypes import positive_int
from harness.hookspecs import hookimpl

__all__ = ["register_engines"]


def add_arguments(group: Any) -> None:
    group.add_argument("--ray-address", metavar="ADDR",
                       help="Ray cluster to run on (host:port, ray://host:port or auto); "
                            "default: RAY_ADDRESS, else the cluster `ray start` started on "
                            "this machine, else a new local Ray instance on its cores")
    group.add_argument("--ray-actors", type=positive_int, metavar="N",
                       help="actors running the suite (default: the cluster's CPUs)")
    group.add_argument("--ray-batch-size", type=positive_int, default=1024, metavar="N",
                       help="records per block an actor reviews at once (default 1024)")


def start(engine: Any, inputs: list[str], args: argparse.Namespace) -> Any:
    from harness.errors import UsageError
    from harness.inputs import resolve_inputs
    from harness_ray.driver import start_ray

    if any(r.batch for r in engine.context.judge_runners()):
        raise UsageError("judges with `batch: true` run on the local engine only (one "
                         "process sends a run's batches): drop --engine ray or `batch: true`")

    sources = getattr(args, "sources", None) or resolve_inputs(
        inputs, messages_column=getattr(args, "messages_column", "messages"))
    return start_ray(engine, sources, address=getattr(args, "ray_address", None),
                     actors=getattr(args, "ray_actors", None),
                     batch_size=getattr(args, "ray_batch_size", 1024),
                     max_cost=getattr(args, "max_cost", None))


@hookimpl
def register_engines(register: Any) -> None:
    register("ray", add_arguments, start,
             help="a Ray cluster (or a local Ray instance): Ray Data and an actor pool")
