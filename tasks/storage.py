"""Object storage through fsspec: any URL (local folder, s3://, memory://), atomic writes.

Credentials and endpoints come from the environment, never from code: s3fs reads the standard
AWS variables; `COLORIZE_S3_ENDPOINT` points it at an S3-compatible server, and
`COLORIZE_STORAGE_OPTIONS` (JSON) passes any other fsspec option.
"""

from __future__ import annotations

import errno
import io
import itertools
import json
import os
import posixpath
import random
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Callable, Iterable, Iterator, TypeVar

import fsspec
from fsspec.core import url_to_fs

T = TypeVar("T")
PERMANENT = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError, ValueError, TypeError)
# OS errors that no wait heals: a name too long, a read-only or full disk, a link loop
PERMANENT_ERRNO = {errno.ENAMETOOLONG, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ELOOP, errno.EINVAL, errno.EACCES, errno.EPERM}


def permanent(e: BaseException) -> bool:
    return isinstance(e, PERMANENT) or (isinstance(e, OSError) and e.errno in PERMANENT_ERRNO)


def retrying(fn: Callable[[], T], what: str, attempts: int = 8, first_delay: float = 0.5, max_delay: float = 15.0) -> T:
    """`fn()` with exponential backoff on transient storage errors (a server restarting, a dropped
    connection): about a minute in all before giving up. Missing objects, a file where a folder should
    be and refused credentials are not retried: they will not heal by waiting."""
    delay = first_delay
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as e:
            if permanent(e):
                raise
            if attempt == attempts - 1:
                raise OSError(f"{what}: storage still failing after {attempts} attempts: {type(e).__name__}: {e}") from e
            time.sleep(delay * (0.75 + 0.5 * random.random()))
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"}


def storage_options(url: str) -> dict:
    opts = json.loads(os.environ.get("COLORIZE_STORAGE_OPTIONS", "{}"))
    if url.startswith(("s3://", "s3a://")) and os.environ.get("COLORIZE_S3_ENDPOINT"):
        opts.setdefault("client_kwargs", {})["endpoint_url"] = os.environ["COLORIZE_S3_ENDPOINT"]
    return opts


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path without protocol) for a URL."""
    return url_to_fs(url, **storage_options(url))


def full_url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return fs.unstrip_protocol(path)


def absolute(url: str) -> str:
    """A local folder as its listings name its files (an absolute path); other URLs as they are. A
    relative SOURCE such as `scans/` otherwise matched none of its own files' keys."""
    if "://" in url and not url.startswith("file://"):
        return url
    return os.path.abspath(os.path.expanduser(url.removeprefix("file://")))


def join(base: str, *parts: str) -> str:
    return posixpath.join(base.rstrip("/"), *parts)


def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    return fs.cat_file(path)


def open_url(url: str):
    """A binary file object for reading (the `open_file` the core's readers take)."""
    fs, path = filesystem(url)
    return fs.open(path, "rb")


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


def atomic_write(url: str, data: bytes | Callable[[BinaryIO], object], replace: bool = True) -> None:
    """Writes `data` (bytes, or a function that writes into a binary file) so that a reader never sees
    a partial object under the final name. With `replace=False` an existing object is never replaced:
    FileExistsError instead (outputs, once written, are kept whatever a later run does).

    On S3 (and the stores that speak it) an object appears only once its PUT, or its multipart
    upload, is complete: it is written in place, in one request. Elsewhere (a local disk, where a
    file is visible while it is written) it goes to a temporary key beside the target and is moved
    into place (or linked, when it must not replace: the link fails if the name is taken); when
    either step fails (the store going away between them, say), the temporary key is removed with
    retries before the error goes up, so that an outage leaves nothing behind. The temporary name
    is short and fixed in length, so that a name near the file system's limit still fits. (On S3 a
    temporary key would cost two more requests, a copy and a delete, for nothing.) A function streams
    straight into the file on a disk, instead of through memory.
    """
    fs, path = filesystem(url)
    if set(fs.protocol) & OBJECT_STORES:
        blob = data if isinstance(data, bytes) else _in_memory(data)
        if replace:
            fs.pipe_file(path, blob)
            return
        try:  # a conditional PUT (If-None-Match: *), as the lease is created
            with fs.open(path, "xb") as f:
                f.write(blob)
        except OSError as e:  # S3 answers 412 Precondition Failed
            if isinstance(e, FileExistsError) or "precondition" in str(e).lower().replace("-", ""):
                raise FileExistsError(f"{url} exists and is not replaced") from None
            raise
        return
    parent = posixpath.dirname(path)
    tmp = posixpath.join(parent, f"_tmp-{uuid.uuid4().hex[:20]}")
    fs.makedirs(parent, exist_ok=True)
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data) if isinstance(data, bytes) else data(f)
        if replace:
            fs.mv(tmp, path)
        elif "file" in fs.protocol:
            os.link(tmp, path)  # atomic, and refuses an existing name
            fs.rm(tmp)
        else:
            if fs.exists(path):
                raise FileExistsError(f"{url} exists and is not replaced")
            fs.mv(tmp, path)
    except Exception:
        retrying(lambda: _remove(fs, tmp), f"removing {tmp}")
        raise


def _in_memory(write: Callable[[BinaryIO], object]) -> bytes:
    buf = io.BytesIO()
    write(buf)
    return buf.getvalue()


class LinkEscapeError(PermissionError):
    """A local source that is a link to something outside the collection."""


def check_inside(url: str, root: str) -> None:
    """Refuses a file under a local `root` whose real path is outside it (a symbolic link, or a link
    to a folder, that leaves the collection): whatever it points at was not given to us to publish.
    Object stores have no links."""
    if "://" in root and not root.startswith("file://"):
        return
    real_root = os.path.realpath(root.removeprefix("file://"))
    real = os.path.realpath(url.removeprefix("file://"))
    if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
        raise LinkEscapeError(f"a link that leaves the source folder (to {real}); not read")


def read_ahead(urls: Iterable[str], depth: int = 4, within: str | None = None) -> Iterator[tuple[str, bytes | Exception]]:
    """(url, its bytes, or the error reading it once retries are spent) for each URL in order. From an
    object store up to `depth` reads are in flight on threads: its latency overlaps the work on the
    files before instead of adding to it (WriteBehind's counterpart), and the bytes held stay bounded.
    A disk has no latency to hide: there the threads' hand-offs only took CPU from the work (two
    preprocessing workers on two cores about 5 % slower), so files are read in turn. `within`: the
    local folder the files must really be in (`check_inside`)."""
    urls = iter(urls)
    first = next(urls, None)
    if first is None:
        return
    urls = itertools.chain([first], urls)
    if not set(filesystem(first)[0].protocol) & OBJECT_STORES:
        yield from ((url, _read(url, within)) for url in urls)
        return
    with ThreadPoolExecutor(depth, thread_name_prefix="read-ahead") as pool:
        window: deque[tuple[str, Future]] = deque()

        def fill() -> None:
            for url in itertools.islice(urls, depth - len(window)):
                window.append((url, pool.submit(_read, url)))

        fill()
        while window:
            url, future = window.popleft()
            fill()
            yield url, future.result()


def _read(url: str, within: str | None = None) -> bytes | Exception:
    try:
        if within is not None:
            check_inside(url, within)
        return retrying(lambda: read_bytes(url), url)
    except Exception as e:  # this file's failure, for the caller to record
        return e


class WriteBehind:
    """Atomic writes on a few threads (each retried), so that an object store's latency overlaps the
    caller's next piece of work instead of stalling it. Writes come in groups (an item's output and
    pictures); each group's `on_done(first error or None)` runs on the caller's thread, from a later
    `put` or from `close`. At most `groups` groups are in flight: the bytes held stay bounded."""

    def __init__(self, threads: int = 4, groups: int = 2):
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="write-behind")
        self.groups = groups
        self.pending: deque[tuple[list[Future], Callable[[BaseException | None], None]]] = deque()

    def put(self, writes: list[tuple[str, bytes] | tuple[str, bytes, bool]], on_done: Callable[[BaseException | None], None]) -> None:
        """`writes`: (key, data) or (key, data, whether an existing object may be replaced)."""
        futures = [self.pool.submit(retrying, lambda w=w: atomic_write(*w), w[0]) for w in writes]
        self.pending.append((futures, on_done))
        while len(self.pending) > self.groups:
            self._finish()

    def _finish(self) -> None:
        futures, on_done = self.pending.popleft()
        errors = [f.exception() for f in futures]  # waits for every write of the group
        on_done(next((e for e in errors if e is not None), None))

    def close(self) -> None:
        while self.pending:
            self._finish()
        self.pool.shutdown()

    def __enter__(self) -> "WriteBehind":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


OBJECT_STORES = {"s3", "s3a"}  # fsspec protocols whose writes are all-or-nothing


def _remove(fs: fsspec.AbstractFileSystem, path: str) -> None:
    try:
        fs.rm(path)
    except FileNotFoundError:
        pass


def remove_tree(url: str) -> None:
    """Everything under `url`, and the folder itself: S3-compatible stores such as SeaweedFS keep an
    emptied folder as an object of its own until it is removed by name."""
    fs, root = filesystem(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)
    try:
        fs.rm(root)
    except OSError:  # already gone (FileNotFoundError), or the store has no such folder object
        pass


def any_file(url: str) -> bool:
    """Whether there is anything under `url`, without listing all of it (a cheap look before starting
    a cluster: local folders are walked until the first file; object stores are asked for one level)."""
    fs, root = filesystem(url)
    if fs.isfile(root):
        return True
    if url.startswith("file://") or "://" not in url:
        return any(files for _, _, files in os.walk(root))
    return bool(fs.ls(root, detail=False))


def list_files(url: str, extensions: set[str] | None = IMAGE_EXTENSIONS) -> tuple[list[str], list[str]]:
    """Every file under `url`, recursively, sorted: (images by extension, others). Names starting
    with '_' or '.' (our own bookkeeping, hidden files) are left out."""
    images, others = list_stamped(url, extensions)
    return list(images), others


def list_stamped(url: str, extensions: set[str] | None = IMAGE_EXTENSIONS) -> tuple[dict[str, str], list[str]]:
    """`list_files` with each image's stamp, from the same listing: what changes when the file's
    content does, short of reading it (`stamp`)."""
    fs, root = filesystem(url)
    if fs.isfile(root):
        return {full_url(fs, root): stamp(fs.info(root))}, []
    images, others = {}, []
    for path, info in sorted(fs.find(root, detail=True).items()):
        rel = posixpath.relpath(path, root)
        if any(part.startswith(("_", ".")) for part in rel.split("/")):
            continue
        ext = posixpath.splitext(path)[1].lower()
        if extensions is None or ext in extensions:
            images[full_url(fs, path)] = stamp(info)
        else:
            others.append(full_url(fs, path))
    return images, others


def stamp(info: dict) -> str:
    """A file's identity in a listing, as rsync's quick check uses it: its size and its ETag (object
    stores: a digest of the content) or its modification time and inode (a disk: a rewrite by
    replacement gets a new inode)."""
    tag = info.get("ETag") or info.get("etag") or f"{info.get('mtime', info.get('LastModified', ''))}:{info.get('ino', '')}"
    return f"{info.get('size')}:{tag}"


def known_by_stamp(listed: dict[str, str], recorded: dict[tuple[str, str], str]) -> dict[str, str]:
    """{url: content id} for the files `listed` ({url: stamp}) with the stamp an earlier run recorded
    beside their content id ({(url, stamp): id}): what a rerun knows without reading them (rsync's
    quick check: a rewrite that keeps size, time and inode goes unnoticed until its stamp changes)."""
    return {u: recorded[(u, st)] for u, st in listed.items() if (u, st) in recorded}
