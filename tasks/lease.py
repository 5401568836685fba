"""One writer per destination and model version: a lease object that object stores can honour.

Two restorations of the same collection into the same DEST with the same model version would both
do every item (and race on every output). The lease serialises them: the first run holds
`DEST/_leases/<model>-v<version>.json`, created with an exclusive create (a local `O_EXCL` file, an
S3 conditional PUT `If-None-Match: *`, which AWS S3 and SeaweedFS honour) and renewed by a heartbeat.
The second waits, then reads the manifests and skips what the first did, so across both runs every
input ends `done` exactly once. A lease whose holder stopped renewing (expired), or whose process on
this host is gone (a killed run), is taken over: only one taker wins, by an exclusive create of a
take-over marker named after the stale holder.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

from tasks.storage import filesystem


class LeaseHeld(RuntimeError):
    pass


@dataclass
class Holder:
    run_id: str
    host: str
    pid: int
    since: float
    expires: float

    def stale(self, now: float) -> bool:
        if now > self.expires:
            return True
        if self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False


class Lease:
    def __init__(self, url: str, run_id: str, ttl: float = 120.0, heartbeat: float = 20.0):
        self.url, self.run_id, self.ttl, self.heartbeat = url, run_id, ttl, heartbeat
        self.fs, self.path = filesystem(url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _me(self, since: float | None = None) -> bytes:
        now = time.time()
        h = Holder(self.run_id, socket.gethostname(), os.getpid(), since or now, now + self.ttl)
        return json.dumps(asdict(h)).encode()

    def _create(self, path: str, data: bytes) -> bool:
        """Exclusive create: True when this call made the object, False when it already existed."""
        try:
            with self.fs.open(path, "xb") as f:
                f.write(data)
            return True
        except FileExistsError:
            return False
        except OSError as e:  # S3: 412 Precondition Failed comes back as a generic OSError
            if "pre-condition" in str(e).lower() or "precondition" in str(e).lower():
                return False
            raise

    def holder(self) -> Holder | None:
        try:
            return Holder(**json.loads(self.fs.cat_file(self.path)))
        except FileNotFoundError:
            return None

    def acquire(self, wait: bool = True, timeout: float | None = None, on_wait: Callable[[Holder], None] | None = None) -> None:
        self.fs.makedirs(posixpath.dirname(self.path), exist_ok=True)
        deadline = None if timeout is None else time.time() + timeout
        told = None
        while True:
            if self._create(self.path, self._me()):
                break
            held = self.holder()
            if held is None:
                continue  # released between our create and our read
            if held.stale(time.time()):
                marker = f"{self.path}.takeover-{held.run_id}-{int(held.since)}"
                if self._create(marker, self._me()):
                    self.fs.pipe_file(self.path, self._me())  # ours now; the marker keeps other takers out
                    break
            if not wait or (deadline is not None and time.time() > deadline):
                raise LeaseHeld(f"{self.url} is held by run {held.run_id} (pid {held.pid} on {held.host}) since {time.ctime(held.since)}")
            if on_wait is not None and told != held.run_id:
                on_wait(held)
                told = held.run_id
            time.sleep(1.0)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, daemon=True, name="lease-heartbeat")
        self._thread.start()

    def _renew(self) -> None:
        since = time.time()
        while not self._stop.wait(self.heartbeat):
            try:
                held = self.holder()
                if held is None or held.run_id != self.run_id:
                    return  # taken over (we were presumed dead): nothing to renew
                self.fs.pipe_file(self.path, self._me(since))
            except Exception:
                pass  # a storage hiccup: the next beat tries again, the ttl gives room for several

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            held = self.holder()
            if held is not None and held.run_id == self.run_id:
                self.fs.rm(self.path)
            for marker in self.fs.glob(f"{self.path}.takeover-*"):
                self.fs.rm(marker)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "Lease":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
