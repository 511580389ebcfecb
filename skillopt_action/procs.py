"""Subprocesses that may hang or misbehave: process groups, timeouts, secret-free environments, cleanup.

Agent CLIs and `command` scorers run model-written code, so:

- they start in a new session (their own process group); on timeout, and after they exit, the whole group
  is killed, so servers or watchers they left behind die with them (`run_in_group`);
- their environment has no variable whose name looks like a secret (`scrubbed_env`), except the ones the
  config names explicitly;
- their output is read from files, bounded (`read_tail`, `read_all`), never from pipes that could fill up.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
TAIL_BYTES = 65536


def scrubbed_env(keep: set[str] | frozenset[str] = frozenset()) -> dict[str, str]:
    """The environment without secret-looking variables (model-written code runs here), except `keep`."""
    return {k: v for k, v in os.environ.items() if k in keep or not SECRET_NAME.search(k)}


def wait_process_group(proc: subprocess.Popen, timeout: float, poll: float = 0.02) -> bool:
    """Wait for a `start_new_session` leader to exit WITHOUT reaping it, so its pid stays the group id for
    `kill_process_group`. Returns True if it timed out."""
    deadline = time.monotonic() + timeout
    while True:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(poll, left))


def kill_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole group (leftover children included); a group that is already gone is fine."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return


@dataclass
class GroupResult:
    exit_code: int  # negative: killed by that signal
    timed_out: bool
    seconds: float


def run_in_group(argv: list[str], *, cwd: Path, env: dict[str, str], stdout: IO[bytes], stderr: IO[bytes],
                 timeout: float, stdin: IO[bytes] | None = None, stdin_text: str | None = None) -> GroupResult:
    """Run `argv` in its own process group with output to the given files; kill the whole group when it
    exits or times out. Raises FileNotFoundError when the program cannot be started."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env,
                            stdin=subprocess.PIPE if stdin_text is not None else (stdin or subprocess.DEVNULL),
                            stdout=stdout, stderr=stderr, start_new_session=True)
    if stdin_text is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin_text.encode("utf-8"))
        except BrokenPipeError:
            log.debug("%s closed stdin before reading all of it", argv[0])
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                log.debug("%s closed stdin early", argv[0])
    timed_out = wait_process_group(proc, timeout)
    kill_process_group(proc)  # the program may leave children behind (servers, watchers): the whole group goes
    code = proc.wait()
    return GroupResult(code, timed_out, time.monotonic() - t0)


def read_tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes of a file as text."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - limit))
        return fh.read().decode("utf-8", errors="replace")


def read_all(path: Path, limit: int = 4 * 1024 * 1024) -> str:
    """A file as text, cut at `limit` bytes with a note."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... output cut at 4 MiB ...]" if len(data) > limit else "")


def rmtree(path: str | os.PathLike) -> None:
    """Remove a directory tree; a command may leave read-only directories behind, so fix and retry once."""
    def fix_and_retry(func, p, _exc):
        os.chmod(os.path.dirname(p), 0o700)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, 0o700)
        func(p)

    shutil.rmtree(path, onerror=fix_and_retry)
