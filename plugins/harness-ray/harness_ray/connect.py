"""Connecting to Ray: which cluster, whether it answers as a Ray cluster, and Ray's own output.

``--ray-address`` names the cluster; without it, Ray's own rule applies (``RAY_ADDRESS``, else
the cluster ``ray start`` last started on this machine, else a new local instance). Before
``ray.init`` (which retries for minutes against a port that is not Ray's, and says nothing of a
token it lacks), the address is asked one gRPC question with a short deadline, so that a wrong
port or a missing token is one line at once.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from harness.errors import UsageError

NO_RAY = "--engine ray needs Ray: pip install 'review-harness[ray]'"
CONNECT_TIMEOUT_S = 5.0
GCS_PROBE = "/ray.rpc.NodeInfoGcsService/CheckAlive"
"""An RPC of Ray's GCS that needs the cluster's token when it has one."""
TOKEN_HELP = ("set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, a file named "
              "by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token)")


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UsageError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is part of the engine
    except ImportError as exc:
        raise UsageError(f"{NO_RAY} ({exc})") from None
    return ray


def cluster_address(address: str | None) -> str | None:
    """The cluster ``ray.init(address)`` would join (``host:port``, or ``ray://...``), or
    ``None`` when it would start a new local instance."""
    if address and address.startswith("ray://"):
        return address
    from ray._private.services import canonicalize_bootstrap_address

    try:
        return canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError) as exc:
        where = f"--ray-address {address}" if address else "RAY_ADDRESS"
        raise UsageError(f"{where}: {' '.join(str(exc).split())}") from None


def check_reachable(address: str, shown: str) -> None:
    """A one-line error now, rather than Ray's long retries, when nothing listens at
    ``address`` (``shown``: as the user named it)."""
    host_port = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address {shown!r}: expected HOST:PORT, ray://HOST:PORT "
                         "or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {shown}: "
                         f"{exc.strerror or exc}") from None


def driver_token(explicit: bool) -> tuple[str | None, str]:
    """The token ``ray.init`` will present (``None``: none) and where it comes from. Ray sends
    one to an address given explicitly only with ``RAY_AUTH_MODE=token``; to a cluster it
    found by itself, also when a token is there to be found."""
    mode = (os.environ.get("RAY_AUTH_MODE") or "").lower()
    if mode == "disabled" or (explicit and mode != "token"):
        return None, "RAY_AUTH_MODE=disabled" if mode == "disabled" else "RAY_AUTH_MODE unset"
    if token := os.environ.get("RAY_AUTH_TOKEN"):
        return token.strip(), "RAY_AUTH_TOKEN"
    paths = [os.environ.get("RAY_AUTH_TOKEN_PATH"), str(Path.home() / ".ray" / "auth_token")]
    for path in filter(None, paths):
        try:
            return Path(path).read_text().strip(), path
        except OSError:
            continue
    return None, "no token found"


def check_ray(address: str, shown: str, explicit: bool) -> None:
    """Ask the GCS at ``address`` one question: a one-line error when it is not a Ray
    cluster, or refuses this driver's token (or its lack of one)."""
    try:
        import grpc
    except ImportError:  # pragma: no cover - a dependency of the plugin
        return
    token, origin = driver_token(explicit)
    channel = grpc.insecure_channel(address)
    call = channel.unary_unary(GCS_PROBE, request_serializer=bytes,
                               response_deserializer=bytes)
    try:
        call(b"", timeout=CONNECT_TIMEOUT_S,
             metadata=[("authorization", f"Bearer {token}")] if token else None)
    except grpc.RpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.UNAUTHENTICATED:
            if token:
                raise UsageError(f"the Ray cluster at {shown} refused this driver's token "
                                 f"(from {origin}): give it the cluster's token") from None
            raise UsageError(f"the Ray cluster at {shown} uses token authentication and "
                             f"this driver has no token ({origin}): {TOKEN_HELP}") from None
        if code != grpc.StatusCode.UNIMPLEMENTED:  # a Ray of another version answers that
            raise UsageError(f"no Ray cluster answers at {shown} (is it the head's GCS "
                             f"port, 6379 by default?): {exc.details() or code.name}") from None
    finally:
        channel.close()


def connect(ray: Any, address: str | None, runtime_env: dict[str, Any] | None = None) -> bool:
    """Connect to ``address`` (see the module doc) with the job's ``runtime_env``; ``True`` if
    this call connected (a process already connected, a notebook or a test, keeps its
    connection and its settings)."""
    if ray.is_initialized():
        return False
    joined = cluster_address(address)
    if joined is not None:
        explicit = bool(address and address != "auto")
        shown = address if explicit else joined
        check_reachable(joined, shown)
        if not joined.startswith("ray://"):
            check_ray(joined, shown, explicit or bool(os.environ.get("RAY_ADDRESS")))
    try:
        # log_to_driver off: the actors' output and Ray's notes go to Ray's log files, never
        # into harness's stdout beside the summary
        ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR,
                 configure_logging=True, log_to_driver=False, runtime_env=runtime_env)
    except Exception as exc:  # noqa: BLE001 - Ray's own errors, in one line
        where = f"the Ray cluster at {joined}" if joined else "a local Ray instance"
        message = " ".join(str(exc).split())[:300]
        raise UsageError(f"cannot connect to {where}: {message}") from None
    return True
