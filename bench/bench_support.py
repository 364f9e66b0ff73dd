"""What every benchmark needs: loopback-only networking and a core of its own."""
from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any


def _is_loopback(host: object) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def allow_only_loopback(script: str) -> None:
    """Refuse, in this process, any connection or name lookup that is not loopback."""

    def refuse(event: str, args: tuple[Any, ...]) -> None:
        # Unix-socket connects (the embedded PostgreSQL) carry a path, not a (host, port) tuple.
        if event == "socket.connect" and isinstance(args[1], tuple) and not _is_loopback(args[1][0]):
            raise PermissionError(f"{script} contacts loopback only, refused {args[1]!r}")
        if event == "socket.getaddrinfo" and not _is_loopback(args[0]):
            raise PermissionError(f"{script} resolves loopback only, refused {args[0]!r}")

    sys.addaudithook(refuse)


def pin_to_core(core: int) -> None:
    """Keep this process on one core so a server and its client never share one."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})
