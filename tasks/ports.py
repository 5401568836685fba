"""Free local ports, for the services the project starts itself."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port free on 127.0.0.1 now (another process may still take it before it is bound)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
