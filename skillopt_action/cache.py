"""The on-disk cache: content-addressed entries in append-only packs, one pack per process and namespace.

A key is a SHA-256 of everything that determines the entry (calls.content_key), so an identical call or rollout
is never paid twice, also across runs. `<root>/<namespace>/` (namespaces `calls` and `rollouts`) holds:

- `pack-<created>-<pid>-<random>.jsonl`: what this version writes. One line per entry, `<key> <JSON>`, written with a
  single `write` on the pack's O_APPEND descriptor. Every process creates its own pack (O_EXCL, mode 0600), so the
  lines of two processes never mix, and a killed process leaves whole lines and at most a torn last line. An entry
  written again (a cached answer re-scored) gets a new line: the last line of the newest pack wins.
- `<key[:2]>/<key>.json`: one file per entry, as earlier versions wrote them. They are still read (an existing
  cache stays hits); nothing writes them any more.

A namespace's index (key -> pack, offset, length) is built the first time a DiskCache uses it, by reading its packs
once and listing its per-file entries (a second DiskCache on the same directory has its own pack). After that a miss
costs a dictionary lookup, not a failed `open`, and a new entry one `write`, not a new file, a rename and its
directory: at 32 rollouts in flight those system calls were a third of our CPU per rollout over the bare SDK
(bench/SCALE.md, run 5). On a miss, packs that other processes appended to since are read again, at most every
`REFRESH_SECONDS`. Entries are masked on the way in (redact.json_line) and not fsynced: a cache saves money, it
is not the record of a run. An entry that fails validation (a torn line, not UTF-8, not JSON, or JSON of the wrong
shape) is a miss with one warning, and the next `put` of its key supersedes it.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .redact import Masked, json_line

Log = Callable[[str], None]
PACK_PREFIX, PACK_SUFFIX = "pack-", ".jsonl"
REFRESH_SECONDS = 1.0  # a miss re-reads packs other processes grew at most this often
_CHUNK = 1 << 20
_READ_FDS = 64  # packs kept open for reading; beyond that a hit opens its pack


def _close_all(fds: dict[int, int]) -> None:
    for fd in fds.values():
        try:
            os.close(fd)
        except OSError:
            pass  # already closed: nothing to release
    fds.clear()


class _Space:
    """The index and this process's pack of one namespace directory."""

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self.index: dict[str, tuple[int, int, int]] = {}  # key -> (pack number, offset, length); length -1: torn
        self.packs: list[str] = []  # pack paths by number
        self.scanned: dict[str, int] = {}  # pack path -> bytes indexed (to the end of its last whole line)
        self.fds: dict[int, int] = {}  # pack number -> open descriptor
        self.legacy: dict[str, str] = {}  # key -> one-file-per-entry path
        self.own: int | None = None  # number of this process's pack (its descriptor reads and appends)
        self.own_end = 0
        self.refreshed = 0.0
        self.loaded = False
        weakref.finalize(self, _close_all, self.fds)

    # ------------------------------------------------------------------ reading the directory

    def load(self) -> None:
        if self.loaded:
            return
        with self.lock:
            if self.loaded:
                return
            try:
                entries = list(os.scandir(self.path))
            except FileNotFoundError:
                entries = []
            for d in entries:
                if len(d.name) == 2 and d.is_dir():
                    for f in os.scandir(d.path):
                        if f.name.endswith(".json") and not f.name.startswith("."):
                            self.legacy[f.name[:-5]] = f.path
            self._scan_new(entries)
            self.refreshed = time.monotonic()
            self.loaded = True

    def refresh(self) -> None:
        """Index what other processes appended since (new packs, grown packs); at most every REFRESH_SECONDS."""
        now = time.monotonic()
        if now - self.refreshed < REFRESH_SECONDS:
            return
        with self.lock:
            self.refreshed = now
            try:
                entries = list(os.scandir(self.path))
            except FileNotFoundError:
                return
            for n, path in enumerate(self.packs):
                if n != self.own:
                    try:
                        size = os.stat(path).st_size
                    except FileNotFoundError:
                        continue
                    if size > self.scanned[path]:
                        self._scan(n, path)
            self._scan_new(entries)

    def _scan_new(self, entries: list[os.DirEntry]) -> None:
        known = set(self.packs)
        for path in sorted(e.path for e in entries  # the name starts with its creation time: older packs first
                           if e.name.startswith(PACK_PREFIX) and e.name.endswith(PACK_SUFFIX) and e.path not in known):
            self.packs.append(path)
            self.scanned[path] = 0
            self._scan(len(self.packs) - 1, path)

    def _scan(self, n: int, path: str) -> None:
        """Index pack `n` from where the last scan stopped. A last line with no newline is torn (a killed write, or
        one still being written by another process: the next scan starts at it again)."""
        start = self.scanned[path]
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            pos, tail = start, b""
            while True:
                chunk = os.pread(fd, _CHUNK, pos + len(tail))
                if not chunk:
                    break
                buf, base = tail + chunk, pos
                i = 0
                while True:
                    nl = buf.find(b"\n", i)
                    if nl < 0:
                        break
                    sp = buf.find(b" ", i, nl)
                    if sp > i:
                        self.index[buf[i:sp].decode("ascii", "replace")] = (n, base + sp + 1, nl - sp - 1)
                    i = nl + 1
                pos, tail = base + i, buf[i:]
            sp = tail.find(b" ")
            if sp > 0:  # a torn last line whose key is whole: that key is a miss with a warning, unless it has a line
                key = tail[:sp].decode("ascii", "replace")
                if key not in self.index:
                    self.index[key] = (n, pos + sp + 1, -1)
            self.scanned[path] = pos
        finally:
            os.close(fd)

    def read(self, n: int, offset: int, length: int) -> bytes:
        fd = self.fds.get(n)
        if fd is not None:
            return os.pread(fd, length, offset)
        with self.lock:  # the first read of an earlier pack opens it, once
            fd = self.fds.get(n)
            if fd is None:
                fd = os.open(self.packs[n], os.O_RDONLY)
                if len(self.fds) >= _READ_FDS:
                    try:
                        return os.pread(fd, length, offset)
                    finally:
                        os.close(fd)
                self.fds[n] = fd
        return os.pread(fd, length, offset)

    # ------------------------------------------------------------------ writing

    def append(self, key: str, line: bytes) -> None:
        """One entry: one `write` on this process's pack (created on the first entry), indexed at once."""
        with self.lock:
            if self.own is None:
                os.makedirs(self.path, exist_ok=True)
                name = f"{PACK_PREFIX}{time.time_ns():016x}-{os.getpid()}-{secrets.token_hex(3)}{PACK_SUFFIX}"
                path = os.path.join(self.path, name)
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
                self.packs.append(path)
                self.own, self.own_end, self.scanned[path] = len(self.packs) - 1, 0, 0
                self.fds[self.own] = fd
            fd, offset = self.fds[self.own], self.own_end
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
            except OSError:  # e.g. a full disk: leave this pack (its last line may be torn); the next entry starts one
                self.own = None
                raise
            self.own_end += len(line)
            self.scanned[self.packs[self.own]] = self.own_end
            head = len(key) + 1
            self.index[key] = (self.own, offset + head, len(line) - head - 1)


class DiskCache:
    """Entries by (namespace, key) under `root` (None: no cache, every lookup a miss). See the module docstring."""

    def __init__(self, root: Path | None, log: Log | None = None):
        self._root: Path | None = None
        self._by_ns: dict[str, _Space] = {}
        self._lock = threading.Lock()
        self.root = root
        self.log = log
        self.invalid = 0  # entries found damaged or of the wrong shape (each was a miss)

    @property
    def root(self) -> Path | None:
        return self._root

    @root.setter
    def root(self, root: Path | str | None) -> None:
        self._root = Path(root) if root else None
        self._by_ns = {}

    def _ns(self, namespace: str) -> _Space:
        space = self._by_ns.get(namespace)
        if space is None:
            assert self._root is not None
            with self._lock:
                space = self._by_ns.get(namespace)
                if space is None:
                    space = self._by_ns[namespace] = _Space(os.path.join(self._root, namespace))
        space.load()
        return space

    def _warn(self, where: str, problem: str) -> None:
        self.invalid += 1
        if self.log:
            self.log(f"warning: cache entry {where} {problem}; treating it as a miss (it will be overwritten)")

    def get(self, namespace: str, key: str, valid: Callable[[Any], str | None] | None = None) -> dict | None:
        """The entry, or None on a miss. `valid(entry)` returns what is wrong with an entry, or None."""
        if self._root is None:
            return None
        space = self._ns(namespace)
        loc = space.index.get(key)
        if loc is None:
            legacy = space.legacy.get(key)
            if legacy is not None:
                return self._get_file(legacy, valid)
            space.refresh()
            loc = space.index.get(key)
            if loc is None:
                return None
        n, offset, length = loc
        where = f"{key[:16]} in {space.packs[n]}"  # the key's start names it well enough, and keeps the line short
        if length < 0:
            self._warn(where, "is torn (its write was cut short)")
            return None
        return self._check(where, space.read(n, offset, length), valid)

    def _get_file(self, path: str, valid: Callable[[Any], str | None] | None) -> dict | None:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        return self._check(path, raw, valid)

    def _check(self, where: str, raw: bytes, valid: Callable[[Any], str | None] | None) -> dict | None:
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            self._warn(where, "is not UTF-8 text")
            return None
        except json.JSONDecodeError as exc:  # e.g. a torn write by an older version
            self._warn(where, f"is not valid JSON ({exc.msg})")
            return None
        problem = "is not a JSON object" if not isinstance(data, dict) else (valid(data) if valid else None)
        if problem:
            self._warn(where, problem)
            return None
        return data

    def put(self, namespace: str, key: str, value: dict | Masked) -> None:
        """Append an entry (one line, one write), secrets masked (a `Masked` entry as it is while the secrets are
        the same); it supersedes any earlier entry of its key."""
        if self._root is None:
            return
        if not key or " " in key or "\n" in key:
            raise ValueError(f"a cache key has no spaces or newlines: {key!r}")
        self._ns(namespace).append(key, f"{key} {json_line(value)}\n".encode())

    def keys(self, namespace: str) -> list[str]:
        """Every key with an entry in `namespace` (packs and per-file entries), sorted; entries are not validated."""
        if self._root is None:
            return []
        space = self._ns(namespace)
        space.refreshed = 0.0
        space.refresh()
        return sorted({k for k, loc in space.index.items() if loc[2] >= 0} | set(space.legacy))
