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
on an O_APPEND file). Model answers are masked as they arrive (calls.py, rollout.py), and logs, reports, state, cache
entries, trajectories, the best skill and everything the GitHub layer sends are masked again on the way out.
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
_SHAPE_RES = [(kind, re.compile(p)) for kind, p in SHAPES.items()]

_lock = threading.Lock()
_names: set[str] = set()
_values: set[str] = set()
_compiled: dict[frozenset[tuple[str, str]], Redactor] = {}


def usable(value: str | None) -> bool:
    """A value long and specific enough to mask without masking ordinary text."""
    return bool(value) and len(value.strip()) >= MIN_LENGTH and not value.strip().isdigit()  # type: ignore[union-attr]


def secret_env_names(env: Mapping[str, str] | None = None) -> list[str]:
    """Names of the environment variables whose values are masked."""
    env = os.environ if env is None else env
    with _lock:
        names = set(_names)
    return sorted(n for n in env if n in names or n in ALWAYS_SECRET
                  or (SECRET_NAME.search(n) and not _LOCATION_NAME.search(n)))


def register_names(names: Iterable[str | None]) -> None:
    """Mask the values of these environment variables from now on (the config's `api_key_env` names)."""
    with _lock:
        _names.update(n for n in names if n)


def register_values(values: Iterable[str | None]) -> None:
    """Mask these values from now on (e.g. a token that reached us other than through the environment)."""
    with _lock:
        _values.update(v for v in values if v and usable(v))


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

    def redact(self, text: str) -> str:
        if not text:
            return text
        if self._known is not None:
            text = self._known.sub(MASK, text)
        for _kind, rx in _SHAPE_RES:
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
        for kind, rx in _SHAPE_RES:
            for m in rx.finditer(text):
                s = m.group(1) if rx.groups else m.group(0)
                found.append((kind, f"a {kind} ({len(s)} characters)"))
        if MASK in text:
            found.append(("masked secret", f"{MASK} (a secret masked when the model answered)"))
        return found


def current(env: Mapping[str, str] | None = None) -> Redactor:
    """The redactor for the environment as it is now (compiled once per distinct set of secrets)."""
    env_map = os.environ if env is None else env
    known = [(n, env_map[n]) for n in secret_env_names(env_map)]
    with _lock:
        known += [("registered value", v) for v in _values]
        sig = frozenset(known)
        r = _compiled.get(sig)
        if r is None:
            if len(_compiled) > 64:
                _compiled.clear()
            r = _compiled[sig] = Redactor(known)
    return r


def redact(text: str) -> str:
    """`text` with every known secret value and secret shape replaced by [REDACTED]."""
    return current().redact(text) if isinstance(text, str) else text


def redact_obj(obj: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every string redacted, keys included."""
    r = current()

    def walk(x: Any) -> Any:
        if isinstance(x, str):
            return r.redact(x)
        if isinstance(x, dict):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        return x

    return walk(obj)


def find_secrets(text: str) -> list[tuple[str, str]]:
    return current().find(text)


# --------------------------------------------------------------------------- writing files


def _replace(path: Path, data: str, durable: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str, *, durable: bool = True) -> None:
    """Write text atomically (temp file + rename), secrets masked. `durable` also fsyncs the data."""
    _replace(Path(path), redact(text), durable)


def write_json(path: str | Path, data: Any, *, indent: int | None = 2, durable: bool = True) -> None:
    """Write JSON atomically (temp file + rename), every string's secrets masked: a reader never sees half a file."""
    # every string is masked before serialising; a second pass over the JSON text could only match across string
    # boundaries, and masking there would break the JSON
    text = json.dumps(redact_obj(data), indent=indent, ensure_ascii=False, default=str)
    _replace(Path(path), text + ("\n" if indent is not None else ""), durable)


def append_json(path: str | Path, data: Any) -> None:
    """Append one JSON line (every string's secrets masked) with a single write: a killed run leaves whole lines."""
    _append(path, json.dumps(redact_obj(data), ensure_ascii=False, separators=(",", ":"), default=str))


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
