"""A stand-in for actions/cache, actions/cache/restore and actions/cache/save in `act` runs (see README.md here).

The rules it keeps are GitHub's: a key hits exactly first, otherwise each `restore-keys` prefix in order picks
the most recently created entry that starts with it; a key that exists is never overwritten; the combined
action saves in its post step unless the key hit exactly; an entry that was not accessed (restored) for 7 days
is evicted. Entries live in $E2E_CACHE_STORE (index.json and one tar file per entry); "now" is $E2E_CLOCK
(epoch seconds), so a test can let weeks pass between runs.

Usage (from the action's JavaScript shim): fake_cache.py restore | restore-only | save | post
Inputs come as the runner passes them: INPUT_PATH, INPUT_KEY, INPUT_RESTORE-KEYS; outputs go to $GITHUB_OUTPUT
and the state for the post step to $GITHUB_STATE (read back as STATE_key, STATE_matched).
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from pathlib import Path

EVICT_AFTER = 7 * 24 * 3600


def lines(value: str) -> list[str]:
    return [x.strip() for x in value.splitlines() if x.strip()]


def now() -> float:
    return float(os.environ["E2E_CLOCK"])


def store() -> Path:
    p = Path(os.environ["E2E_CACHE_STORE"])
    p.mkdir(parents=True, exist_ok=True)
    return p


def load_index() -> dict:
    path = store() / "index.json"
    index = json.loads(path.read_text()) if path.is_file() else {}
    for key in [k for k, e in index.items() if now() - e["accessed"] > EVICT_AFTER]:
        print(f"fake cache: evicted {key} (not accessed for more than 7 days)")
        (store() / index.pop(key)["archive"]).unlink(missing_ok=True)
    return index


def save_index(index: dict) -> None:
    (store() / "index.json").write_text(json.dumps(index, indent=2))


def write(name: str, value: str) -> None:
    with open(os.environ[name], "a", encoding="utf-8") as f:
        f.write(value + "\n")


def restore(keep_state: bool) -> None:
    key = os.environ["INPUT_KEY"].strip()
    prefixes = lines(os.environ.get("INPUT_RESTORE-KEYS", ""))
    index = load_index()
    matched = key if key in index else None
    for prefix in prefixes if matched is None else []:
        found = sorted((e["created"], k) for k, e in index.items() if k.startswith(prefix))
        if found:
            matched = found[-1][1]
            break
    if matched is not None:
        with tarfile.open(store() / index[matched]["archive"]) as tar:
            tar.extractall(os.environ["GITHUB_WORKSPACE"], filter="data")
        index[matched]["accessed"] = now()
        save_index(index)
        print(f"fake cache: restored {matched}")
    else:
        print(f"fake cache: no entry for {key} or {prefixes}")
    write("GITHUB_OUTPUT", f"cache-hit={'true' if matched == key else 'false'}")
    write("GITHUB_OUTPUT", f"cache-matched-key={matched or ''}")
    if keep_state:
        write("GITHUB_STATE", f"key={key}")
        write("GITHUB_STATE", f"matched={matched or ''}")


def save(key: str) -> None:
    index = load_index()
    if key in index:
        print(f"fake cache: {key} exists; not saving (keys are immutable)")
        return
    workspace = Path(os.environ["GITHUB_WORKSPACE"])
    paths = [p for p in lines(os.environ["INPUT_PATH"]) if (workspace / p).exists()]
    if not paths:
        print("fake cache: none of the paths exist; nothing saved")
        return
    archive = f"{len(index) + 1}-{abs(hash(key)) % 10**8}.tar"
    with tarfile.open(store() / archive, "w") as tar:
        for p in paths:
            tar.add(workspace / p, arcname=p)
    index[key] = {"created": now(), "accessed": now(), "archive": archive, "paths": paths}
    save_index(index)
    print(f"fake cache: saved {key}")


def main(mode: str) -> None:
    if mode in ("restore", "restore-only"):
        restore(keep_state=mode == "restore")
    elif mode == "save":
        save(os.environ["INPUT_KEY"].strip())
    elif mode == "post":
        if os.environ.get("STATE_matched") == os.environ.get("STATE_key"):
            print("fake cache: exact hit on restore; not saving")
        else:
            save(os.environ["STATE_key"])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1])
