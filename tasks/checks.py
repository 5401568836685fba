"""Checks that run before any work: wrong arguments and unreachable services end with one line that
names the thing and the reason, and nothing is created. The command line calls them before it starts
a flow; the flows call them too, for runs started by a deployment."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

import fsspec

from tasks.storage import filesystem


class ArgumentError(ValueError):
    """A wrong argument: the message names it and says what is wrong."""


class ServiceUnavailable(RuntimeError):
    """A service the run needs does not answer."""


class ModelMismatch(RuntimeError):
    """A local copy of a model does not match what the registry recorded for it."""


def check_url(url: str, what: str) -> None:
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if "://" not in url and ":/" in url and not os.path.exists(url):
        raise ArgumentError(f"{what} {url!r}: malformed URL (expected protocol://path)")
    try:
        fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError):
        raise ArgumentError(f"{what} {url!r}: unknown storage protocol {protocol!r}") from None
    if protocol != "file" and not url.split("://", 1)[1].strip("/"):
        raise ArgumentError(f"{what} {url!r}: no bucket or path after {protocol}://")


def check_source(source: str, what: str = "source") -> None:
    """The source exists (a folder or one file) and can be listed."""
    check_url(source, what)
    try:
        fs, path = filesystem(source)
        if not fs.exists(path):
            raise ArgumentError(f"{what} {source}: no such folder or file")
    except ArgumentError:
        raise
    except PermissionError as e:
        raise ArgumentError(f"{what} {source}: access refused ({e})") from None
    except Exception as e:
        raise ArgumentError(f"{what} {source}: cannot be read ({type(e).__name__}: {e})") from None


def check_dest(source: str, dest: str) -> None:
    """DEST is a valid URL and not inside SOURCE (outputs would be read back as new inputs)."""
    check_url(dest, "destination")
    src = source.rstrip("/").split("://")[-1]
    dst = dest.rstrip("/").split("://")[-1]
    same_store = source.split("://")[0] == dest.split("://")[0] if "://" in source or "://" in dest else True
    if "://" not in source:
        src, dst = os.path.abspath(src), os.path.abspath(dst)
    if same_store and (dst == src or dst.startswith(src + "/")):
        raise ArgumentError(f"destination {dest} is inside the source {source}: its outputs would be read as new inputs")


def check_tracking_server(uri: str, within: float = 30.0) -> None:
    """An HTTP tracking server answers its health check, or a clear error within `within` seconds
    (MLflow's own client would retry for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    deadline, last = time.time() + within, None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                return  # it answers; authentication is the client's business
            last = e
        except Exception as e:
            last = e
        time.sleep(2)
    raise ServiceUnavailable(f"the MLflow tracking server at {uri} does not answer ({last}); is it running?")
