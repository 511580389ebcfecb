"""The output boundary: secrets are masked before any text leaves the process, and files are replaced atomically.

What is masked (as `[REDACTED]`):

- **known values**: the value of every environment variable whose name looks like a key, token, secret or
  password (`procs.SECRET_NAME`: KEY, TOKEN, SECRET, PASSWORD, PASSWD, CREDENTIAL), of every variable the
  config names as a key (`register_names`: the `api_key_env` of target, optimizer and judge) and of any value
  registered with `register_values`. Values shorter than `MIN_LENGTH` characters are not masked (they would
  mask ordinary words); names ending in _PATH, _FILE or _DIR hold locations, not secrets. The environment is
  read at every call, so a variable set after start-up is covered too.
- **secret shapes**, known or not: GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_), OpenAI (sk-...,
  sk-proj-...) and Anthropic (sk-ant-...) keys, AWS access key ids (AKIA...), Google API keys, Slack tokens,
  JSON web tokens, the token after `Bearer`, and PEM private-key blocks.

Every writer of the run goes through here: `write_text`, `write_json` (temp file in the same directory, then
`os.replace`, so a reader or a killed run never sees half a file) and `append_json` / `append_line` (one `write`
on an O_APPEND file; `Appender` keeps such a file open for a run's journal and trajectories). Model answers are
masked as they arrive (calls.py, rollout.py), and logs, reports, state, cache entries, trajectories, the best skill
and everything the GitHub layer sends are masked again on the way out, except a value wrapped as `Masked` (a fresh
rollout, masked on arrival), which is masked again only if the secrets changed since. Masking is cheap where text
has no secret:
the environment is scanned again only when it changed, a shape's pattern runs only on text holding its literal
hint, and a long text (the skill in every rollout's prompt) is masked once per set of secrets.
`guard_streams()` masks stdout/stderr (tracebacks included) and `add_mask_commands()` gives the runner's
`::add-mask::` lines.

Why a small pattern list and not detect-secrets (Yelp) or one of its forks: those are repository scanners. Their
findings carry no position (the GitHub plugin reports only the `ghp` prefix as the "secret"), their settings are
process-global, the entropy plugins flag ordinary words in ad-hoc mode, a line costs about a millisecond, and
they know no Anthropic keys, fine-grained GitHub tokens, bearer tokens or whole private-key blocks. What protects
a run is masking the *known values* exactly; the shapes are a second net, taken from the providers' documented
token formats.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from .procs import SECRET_NAME

MASK = "[REDACTED]"
MIN_LENGTH = 8
ALWAYS_SECRET = ("GITHUB_TOKEN", "INPUT_GITHUB-TOKEN", "ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
_LOCATION_NAME = re.compile(r"_(?:PATH|FILE|DIR)$", re.IGNORECASE)

# kind -> pattern; a pattern with a group masks only the group (e.g. the token after "Bearer")
SHAPES: dict[str, str] = {
    "private key block": r"(?s)-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----.*?"
                         r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----|\Z)",
    "GitHub token": r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,255}\b",
    "GitHub fine-grained token": r"\bgithub_pat_[A-Za-z0-9_]{30,255}",
    "Anthropic key": r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
    "OpenAI key": r"\bsk-(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{20,}",
    "AWS access key id": r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
    "Google API key": r"\bAIza[0-9A-Za-z_\-]{35}\b",
    "Slack token": r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    "JSON web token": r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    "bearer token": r"\b[Bb]earer\s+([A-Za-z0-9\-._~+/]{16,}=*)",
}
# text every match of a shape contains: a shape's pattern only runs on text holding one of its hints, so text
# without secrets (nearly all of it) costs a few substring scans instead of ten regular-expression passes
SHAPE_HINTS: dict[str, tuple[str, ...]] = {
    "private key block": ("-----BEGIN",),
    "GitHub token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "GitHub fine-grained token": ("github_pat_",),
    "Anthropic key": ("sk-ant-",),
    "OpenAI key": ("sk-",),
    "AWS access key id": ("AKIA", "ASIA", "ABIA", "ACCA"),
    "Google API key": ("AIza",),
    "Slack token": ("xox",),
    "JSON web token": ("eyJ",),
    "bearer token": ("earer",),
}
_SHAPE_RES = [(kind, re.compile(p), SHAPE_HINTS[kind]) for kind, p in SHAPES.items()]
_ALL_HINTS = tuple(sorted({h for hints in SHAPE_HINTS.values() for h in hints}))
_ANY_HINT = re.compile("|".join(re.escape(h) for h in _ALL_HINTS))  # one scan of a text for all the hints
# a text of MEMO_MIN..MEMO_MAX characters is masked once per redactor and remembered (up to MEMO_SIZE of them): the
# system prompt with the skill recurs in every rollout's transcript, cache entry and trajectory row
MEMO_MIN, MEMO_MAX, MEMO_SIZE = 200, 20_000, 512

_lock = threading.Lock()
_names: set[str] = set()
_values: set[str] = set()
_compiled: dict[frozenset[tuple[str, str]], Redactor] = {}
_name_is_secret: dict[str, bool] = {}  # the name pattern, evaluated once per variable name
_version = [0]  # bumped by register_names / register_values
# (the process environment's raw mapping as last seen, _version then, its redactor): while neither changed,
# `current()` costs one dictionary comparison instead of a scan of every variable
_last: list[tuple[dict, int, Redactor]] = []


def _secret_name(name: str) -> bool:
    hit = _name_is_secret.get(name)
    if hit is None:
        hit = _name_is_secret[name] = bool(name in ALWAYS_SECRET or (SECRET_NAME.search(name)
                                                                      and not _LOCATION_NAME.search(name)))
    return hit


def usable(value: str | None) -> bool:
    """A value long and specific enough to mask without masking ordinary text."""
    return bool(value) and len(value.strip()) >= MIN_LENGTH and not value.strip().isdigit()  # type: ignore[union-attr]


def secret_env_names(env: Mapping[str, str] | None = None) -> list[str]:
    """Names of the environment variables whose values are masked."""
    env = os.environ if env is None else env
    with _lock:
        names = set(_names)
    return sorted(n for n in env if n in names or _secret_name(n))


def register_names(names: Iterable[str | None]) -> None:
    """Mask the values of these environment variables from now on (the config's `api_key_env` names)."""
    with _lock:
        _names.update(n for n in names if n)
        _version[0] += 1


def register_values(values: Iterable[str | None]) -> None:
    """Mask these values from now on (e.g. a token that reached us other than through the environment)."""
    with _lock:
        _values.update(v for v in values if v and usable(v))
        _version[0] += 1


class Redactor:
    """Masks a fixed set of known values (name -> value) and every secret shape."""

    def __init__(self, known: Iterable[tuple[str, str]]):
        pairs: dict[str, str] = {}
        for name, value in known:
            if not usable(value):
                continue
            pairs.setdefault(value, name)
            if "\n" in value:  # a multi-line secret may come back re-wrapped: mask each long line as well
                for line in value.splitlines():
                    if usable(line):
                        pairs.setdefault(line.strip(), name)
        self.names_by_value = pairs
        ordered = sorted(pairs, key=len, reverse=True)  # longest first: a value containing another is masked whole
        self._known = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
        self._memo: dict[str, str] = {}

    def redact(self, text: str) -> str:
        if len(text) < MIN_LENGTH:  # shorter than any maskable value or secret shape
            return text
        if not MEMO_MIN <= len(text) <= MEMO_MAX:
            return self._redact(text)
        out = self._memo.get(text)
        if out is None:
            out = self._redact(text)
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[text] = out
        return out

    def _redact(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(MASK, text)
        if _ANY_HINT.search(text) is None:  # nearly all text: one scan instead of one per hint
            return text
        present = [h for h in _ALL_HINTS if h in text]
        for _kind, rx, hints in _SHAPE_RES:
            if not any(h in present for h in hints):
                continue
            if rx.groups:
                text = rx.sub(lambda m: m.group(0)[: m.start(1) - m.start(0)] + MASK, text)
            else:
                text = rx.sub(MASK, text)
        return text

    def find(self, text: str) -> list[tuple[str, str]]:
        """(kind, safe description) of every secret in `text`, the secret itself never included: the value of a
        known variable, a secret shape, or a `[REDACTED]` mark (a secret masked on arrival)."""
        found: list[tuple[str, str]] = []
        if self._known is not None:
            for m in self._known.finditer(text):
                found.append(("known value", f"the value of ${self.names_by_value[m.group(0)]}"))
        for kind, rx, _hints in _SHAPE_RES:
            for m in rx.finditer(text):
                s = m.group(1) if rx.groups else m.group(0)
                found.append((kind, f"a {kind} ({len(s)} characters)"))
        if MASK in text:
            found.append(("masked secret", f"{MASK} (a secret masked when the model answered)"))
        return found


def current(env: Mapping[str, str] | None = None) -> Redactor:
    """The redactor for the environment as it is now (compiled once per distinct set of secrets)."""
    raw = getattr(os.environ, "_data", None) if env is None else None  # CPython's encoded copy of the environment
    version = _version[0]
    if raw is not None and _last:
        seen, seen_version, r = _last[0]
        if seen_version == version and seen == raw:
            return r
    env_map = os.environ if env is None else env
    known = [(n, env_map[n]) for n in secret_env_names(env_map)]
    with _lock:
        known += [("registered value", v) for v in _values]
        sig = frozenset(known)
        found = _compiled.get(sig)
        if found is None:
            if len(_compiled) > 64:
                _compiled.clear()
            found = _compiled[sig] = Redactor(known)
        if raw is not None:
            _last[:] = [(dict(raw), version, found)]
    return found


def redact(text: str) -> str:
    """`text` with every known secret value and secret shape replaced by [REDACTED]."""
    return current().redact(text) if isinstance(text, str) else text


def redact_obj(obj: Any, redactor: Redactor | None = None) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every string redacted, keys included. A `Masked`
    value inside is taken as it is when `redactor` (default: the current one) is the one that masked it."""
    r = current() if redactor is None else redactor
    red = r.redact

    def walk(x: Any) -> Any:
        t = type(x)  # the exact JSON types first (one identity check each), then their subclasses
        if t is str:
            return red(x) if len(x) >= MIN_LENGTH else x  # a shorter text holds no maskable secret (Redactor.redact)
        if t is dict:
            return {((red(k) if len(k) >= MIN_LENGTH else k) if type(k) is str else walk(k) if isinstance(k, str)
                     else k): walk(v) for k, v in x.items()}
        if t is list or t is tuple:
            return [walk(v) for v in x]
        if t is Masked:
            return x.value if x.redactor is r else walk(x.value)
        if t is int or t is float or t is bool or x is None:
            return x
        if isinstance(x, str):
            return red(x)
        if isinstance(x, dict):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        return x

    return walk(obj)


class Masked:
    """A JSON-like value masked once, on arrival, by `redactor`: every writer here takes it as it is while the
    secrets are the same (the same redactor: one identity check instead of a second masking pass over a rollout's
    transcript), and masks it again when they changed. Only this module's writers unwrap it. A Masked value holds
    no Masked value inside (a writer that takes it as it is encodes it directly)."""

    __slots__ = ("value", "redactor")

    def __init__(self, value: Any, redactor: Redactor):
        self.value, self.redactor = value, redactor


def masked_once(obj: Any) -> Masked:
    """`obj` masked now, marked so that the writers do not mask it a second time (see `Masked`)."""
    r = current()
    return Masked(redact_obj(obj, r), r)


def find_secrets(text: str) -> list[tuple[str, str]]:
    return current().find(text)


# --------------------------------------------------------------------------- writing files


def _temp_file(path: str) -> tuple[int, str]:
    """A new private (0600) temp file next to `path`: `.<name>.<pid>-<thread>.tmp`, unique to this writer, so a
    cache write costs an `open` and no name search; `mkstemp` when a crashed writer left that name behind."""
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600), tmp
    except FileExistsError:
        return tempfile.mkstemp(dir=head or None, prefix=f".{name}.", suffix=".tmp")


def _replace(path: Path | str, data: str, durable: bool) -> None:
    if not isinstance(data, str):
        raise TypeError(f"can only write text, not {type(data).__name__}")
    raw = data.encode("utf-8")
    path = os.fspath(path)
    try:
        fd, tmp = _temp_file(path)
    except FileNotFoundError:  # the directory is created the first time only (a cache writes thousands of files)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd, tmp = _temp_file(path)
    try:
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str, *, durable: bool = True) -> None:
    """Write text atomically (temp file + rename), secrets masked. `durable` also fsyncs the data."""
    _replace(path, redact(text), durable)


def write_json(path: str | Path, data: Any, *, indent: int | None = 2, durable: bool = True) -> None:
    """Write JSON atomically (temp file + rename), every string's secrets masked: a reader never sees half a file."""
    # every string is masked before serialising; a second pass over the JSON text could only match across string
    # boundaries, and masking there would break the JSON
    text = json.dumps(redact_obj(data), indent=indent, ensure_ascii=False, default=str)
    _replace(path, text + ("\n" if indent is not None else ""), durable)


_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)  # one encoder: no set-up per line


def json_line(data: Any) -> str:
    """`data` as compact one-line JSON, every string's secrets masked (a `Masked` value taken as it is while the
    secrets are the same): what the appending writers here and the cache packs (cache.py) write."""
    if type(data) is Masked and data.redactor is current():
        return _LINE.encode(data.value)
    return _LINE.encode(redact_obj(data))


def masked_json_head(data: dict, cache: dict) -> str:
    """`json_line(data)` without its closing brace, remembered in `cache` (by the items) for the current secrets: the
    fixed head of a line a writer completes with numbers (the spend journal's events), masked once, not per line."""
    r = current()
    key = tuple(data.items())
    got = cache.get(key)
    if got is None or got[0] is not r:
        if len(cache) > 64:
            cache.clear()
        got = cache[key] = (r, _LINE.encode(redact_obj(data, r))[:-1])
    return got[1]


def append_json(path: str | Path, data: Any) -> None:
    """Append one JSON line (every string's secrets masked) with a single write: a killed run leaves whole lines."""
    _append(path, json_line(data))


def append_line(path: str | Path, line: str) -> None:
    """Append one line of text (secrets masked) with a single write to an O_APPEND file."""
    _append(path, redact(line))


def _append(path: str | Path, line: str) -> None:
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class Appender:
    """A JSONL file a run appends to many times (spend journal, trajectories), kept open: each line is masked and
    written with a single `write` on an O_APPEND descriptor, exactly as `append_json` does, without an open and a
    close per line. Re-open after the file was replaced (`reopen`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None
        self._lock = threading.Lock()

    def append_json(self, data: Any) -> None:
        self._write(json_line(data))

    def append_line(self, line: str) -> None:
        self._write(redact(line))

    def append_masked(self, line: str) -> None:
        """Append a line already masked by the current redactor (see `masked_json_head`), as it is."""
        self._write(line)

    def _write(self, line: str) -> None:
        data = (line.rstrip("\n") + "\n").encode("utf-8")
        fd = self._fd
        if fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                fd = self._fd
        os.write(fd, data)  # one write on an O_APPEND descriptor is atomic: no lock, writers never queue

    def reopen(self) -> None:
        """Close the descriptor; the next line opens the file at `path` again (after it was replaced)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    close = reopen

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


# --------------------------------------------------------------------------- streams and the Actions runner


class RedactingStream(io.TextIOBase):
    """A text stream that masks secrets in everything written to it, then passes it on."""

    def __init__(self, inner: TextIO):
        self.inner = inner

    def write(self, s: str) -> int:
        self.inner.write(redact(s))
        return len(s)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.inner.fileno()


@contextlib.contextmanager
def guard_streams() -> Iterator[None]:
    """Mask secrets in everything this process prints on stdout and stderr while the block runs."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(out)
    sys.stderr = RedactingStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def emit_add_masks(env: Mapping[str, str] | None = None) -> int:
    """Print the `::add-mask::` commands on this process's real stdout (past any `guard_streams` wrapper, which
    would mask the very values the runner must learn). Returns how many were printed."""
    out = sys.stdout
    while isinstance(out, RedactingStream):
        out = out.inner
    lines = add_mask_commands(env)
    for line in lines:
        out.write(line + "\n")
    out.flush()
    return len(lines)


def add_mask_commands(env: Mapping[str, str] | None = None) -> list[str]:
    """`::add-mask::VALUE` workflow commands for every known secret value (each line of a multi-line value
    separately, as the runner masks line by line), so the runner hides them in the job log too."""
    r = current(env)
    lines = []
    for value in r.names_by_value:
        for line in value.splitlines():
            if usable(line) and f"::add-mask::{line.strip()}" not in lines:
                lines.append(f"::add-mask::{line.strip()}")
    return lines
