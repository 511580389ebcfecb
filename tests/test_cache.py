"""The on-disk cache (skillopt_action/cache.py): append-only packs, the older one-file-per-entry layout still read,
torn and damaged lines as misses with one warning, several processes on one cache directory, kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skillopt_action import cache as cache_mod
from skillopt_action import redact
from skillopt_action.cache import DiskCache

ROOT = Path(__file__).resolve().parent.parent


def key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()  # as calls.content_key makes them


def entry(i: int) -> dict:
    return {"text": f"answer {i}", "usage": {"input_tokens": i, "output_tokens": 1}}


def packs(root: Path, ns: str = "calls") -> list[Path]:
    return sorted((root / ns).glob("pack-*.jsonl"))


def test_entries_are_lines_of_one_pack_and_read_back_by_a_new_cache(tmp_path):
    c = DiskCache(tmp_path)
    for i in range(5):
        c.put("calls", key(i), entry(i))
    assert c.get("calls", key(3)) == entry(3), "an entry is read back at once"
    (pack,) = packs(tmp_path)
    lines = pack.read_text(encoding="utf-8").splitlines()
    assert [ln.split(" ", 1)[0] for ln in lines] == [key(i) for i in range(5)], "in the order written"
    assert oct(pack.stat().st_mode & 0o777) == "0o600"
    again = DiskCache(tmp_path)
    assert [again.get("calls", key(i)) for i in range(5)] == [entry(i) for i in range(5)]
    assert again.get("calls", key(9)) is None and again.get("rollouts", key(1)) is None
    assert again.keys("calls") == sorted(key(i) for i in range(5))


def test_a_key_written_again_is_superseded_by_its_last_line_also_across_processes(tmp_path):
    a = DiskCache(tmp_path)
    a.put("rollouts", key(1), {"score": 0})
    a.put("rollouts", key(1), {"score": 1})
    assert a.get("rollouts", key(1)) == {"score": 1}
    b = DiskCache(tmp_path)  # a later run: its own pack, created after a's
    assert b.get("rollouts", key(1)) == {"score": 1}
    b.put("rollouts", key(1), {"score": 2})
    assert DiskCache(tmp_path).get("rollouts", key(1)) == {"score": 2}, "the newest pack wins"
    assert len(packs(tmp_path, "rollouts")) == 2


def test_an_existing_one_file_per_entry_cache_stays_hits(tmp_path):
    """Caches written before the packs: <ns>/<key[:2]>/<key>.json, pretty or compact JSON."""
    for i in range(3):
        path = tmp_path / "calls" / key(i)[:2] / f"{key(i)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entry(i), indent=2 if i else None), encoding="utf-8")
    (tmp_path / "calls" / key(0)[:2] / f".{key(0)}.json.123-4.tmp").write_text("{")  # a crashed writer's temp file
    c = DiskCache(tmp_path)
    assert [c.get("calls", key(i)) for i in range(3)] == [entry(i) for i in range(3)]
    assert c.keys("calls") == sorted(key(i) for i in range(3))
    c.put("calls", key(1), entry(7))  # a re-score supersedes the old file without touching it
    assert DiskCache(tmp_path).get("calls", key(1)) == entry(7)
    assert json.loads((tmp_path / "calls" / key(1)[:2] / f"{key(1)}.json").read_text()) == entry(1)


def test_a_torn_last_line_is_a_miss_with_one_warning_and_the_whole_lines_stay_hits(tmp_path):
    c = DiskCache(tmp_path)
    for i in range(3):
        c.put("calls", key(i), entry(i))
    (pack,) = packs(tmp_path)
    with open(pack, "ab") as f:  # what a kill -9 in the middle of a write leaves
        f.write(f"{key(3)} ".encode() + json.dumps(entry(3)).encode()[:10])
    warnings: list[str] = []
    d = DiskCache(tmp_path, log=warnings.append)
    assert [d.get("calls", key(i)) for i in range(3)] == [entry(i) for i in range(3)]
    assert warnings == []
    assert d.get("calls", key(3)) is None
    assert len(warnings) == 1 and "torn" in warnings[0] and "treating it as a miss" in warnings[0]
    assert d.invalid == 1 and key(3) not in d.keys("calls")
    d.put("calls", key(3), entry(3))  # paid again: the new line supersedes the torn one
    assert DiskCache(tmp_path).get("calls", key(3)) == entry(3)


def test_damaged_lines_are_misses_with_one_warning_each(tmp_path):
    c = DiskCache(tmp_path)
    for i in range(4):
        c.put("calls", key(i), entry(i))
    (pack,) = packs(tmp_path)
    lines = pack.read_bytes().splitlines()
    lines[0] = key(0).encode() + b' {"text": "cut'
    lines[1] = key(1).encode() + b" \xff\xfe garbage"
    lines[2] = key(2).encode() + b" [1, 2]"
    pack.write_bytes(b"\n".join(lines) + b"\n")
    warnings: list[str] = []
    d = DiskCache(tmp_path, log=warnings.append)
    assert [d.get("calls", key(i)) for i in range(4)] == [None, None, None, entry(3)]
    assert [w.split(" in ")[0] for w in warnings] == [f"warning: cache entry {key(i)[:16]}" for i in range(3)]
    assert "not valid JSON" in warnings[0] and "not UTF-8" in warnings[1] and "not a JSON object" in warnings[2]


def test_two_processes_appending_to_one_cache_lose_no_entry(tmp_path):
    script = (
        "import hashlib, sys\n"
        "from skillopt_action.cache import DiskCache\n"
        "c = DiskCache(sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "for i in range(400):\n"
        "    c.put('rollouts', hashlib.sha256(str(i).encode()).hexdigest(), {'i': i, 'pad': 'x' * (i % 5000)})\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stdout is not None and p.stdin is not None and p.stdout.readline().strip() == "ready"
    mine = DiskCache(tmp_path)
    p.stdin.write("go\n")
    p.stdin.flush()
    for i in range(400, 800):  # at the same time as the other process
        mine.put("rollouts", key(i), {"i": i, "pad": "x" * (i % 5000)})
    assert p.wait(120) == 0
    c = DiskCache(tmp_path)
    assert c.keys("rollouts") == sorted(key(i) for i in range(800))
    assert all(c.get("rollouts", key(i)) == {"i": i, "pad": "x" * (i % 5000)} for i in range(800))
    assert len(packs(tmp_path, "rollouts")) == 2, "one pack per process: their lines never mix"


def test_an_entry_another_process_wrote_after_the_index_was_built_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "REFRESH_SECONDS", 0.0)
    reader, writer = DiskCache(tmp_path), DiskCache(tmp_path)
    writer.put("calls", key(0), entry(0))
    assert reader.get("calls", key(0)) == entry(0), "a new pack of another writer"
    writer.put("calls", key(1), entry(1))
    assert reader.get("calls", key(1)) == entry(1), "a grown pack"


def test_kill_9_while_writing_leaves_whole_entries_and_at_most_one_torn_line(tmp_path):
    script = (
        "import sys\n"
        "from skillopt_action.cache import DiskCache\n"
        "c = DiskCache(sys.argv[1])\n"
        "i = 0\n"
        "while True:\n"
        "    c.put('rollouts', f'{i:064x}', {'i': i, 'pad': 'y' * 30000})\n"
        "    i += 1\n"
        "    if i == 50: print('ready', flush=True)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    warnings: list[str] = []
    c = DiskCache(tmp_path, log=warnings.append)
    keys = c.keys("rollouts")
    assert len(keys) >= 50
    assert all(c.get("rollouts", k) == {"i": int(k, 16), "pad": "y" * 30000} for k in keys)
    assert warnings == [], "every indexed entry is whole"
    (pack,) = packs(tmp_path, "rollouts")
    assert pack.read_bytes().count(b"\n") == len(keys), "at most the last line is torn"


def test_entries_are_masked_and_a_bad_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CACHE_TEST_TOKEN", "cache-secret-value-31337")
    c = DiskCache(tmp_path)
    c.put("calls", key(1), {"text": "leaked cache-secret-value-31337 here", "usage": {}})
    (pack,) = packs(tmp_path)
    assert "cache-secret-value-31337" not in pack.read_text() and redact.MASK in pack.read_text()
    with pytest.raises(ValueError):
        c.put("calls", "two words", {"text": "x"})
    assert DiskCache(None).get("calls", key(1)) is None and DiskCache(None).keys("calls") == []


def test_a_cache_of_many_packs_reads_every_entry_with_a_bounded_number_of_open_files(tmp_path):
    for i in range(cache_mod._READ_FDS + 6):  # one pack per earlier run
        DiskCache(tmp_path).put("rollouts", key(i), {"i": i})
    c = DiskCache(tmp_path)
    for _ in range(2):
        assert [c.get("rollouts", key(i)) for i in range(cache_mod._READ_FDS + 6)] == [
            {"i": i} for i in range(cache_mod._READ_FDS + 6)]
    assert len(c._by_ns["rollouts"].fds) == cache_mod._READ_FDS
