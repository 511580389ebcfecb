"""Skill packages: a skill folder (SKILL.md, references/*.md, scripts and other files) carried as one text.

The engine passes a skill around as text: the rollout cache, the evidence memory and the checkpoint all key on
its hash. A folder is therefore packed into one text (a marker line, then JSON `{main, files, assets}`), so the
hash covers every file of the package and nothing else in the engine needs to know about folders. A plain skill
file stays its own text, byte for byte (single-file caches and hashes are unchanged).

- `files`   the Markdown files (SKILL.md and every other `*.md`): what the optimizer may edit, and where it may
            add a new reference file (`references/<name>.md`, with an `add` edit, within the edit budget)
- `assets`  everything else (scripts, data): installed into agent workspaces next to SKILL.md, never edited

`apply` is `edits.apply_edits` for packages: each edit names its file (`Edit.file`, "" = the main file), the
op and line budgets span the package, and an edit naming a file it may not touch is refused with the reason.
Front matter and protected regions of every file stay untouchable (edits.py enforces it per file).
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .diff import diff_stats
from .edits import ApplyReport, EditResult, apply_edits
from .errors import ConfigError
from .types import Edit

MAGIC = "<!-- skillopt:package 1 -->\n"
MAIN = "SKILL.md"
NEW_FILE_RE = re.compile(r"^references/[A-Za-z0-9][A-Za-z0-9._-]{0,80}\.md$")
MAX_BYTES = 2_000_000  # a skill package bigger than this is not a skill (and would bloat every checkpoint)
_UNLIMITED = 10**9


@dataclass
class Package:
    """A skill as files. `single`: a plain skill file (`files` holds just it, under its own name)."""

    main: str
    files: dict[str, str]  # Markdown files by path inside the folder, the main file included
    assets: dict[str, dict] = field(default_factory=dict)  # other files: {"text"|"base64": ..., "executable": bool}
    single: bool = False

    @property
    def main_text(self) -> str:
        return self.files[self.main]

    def ordered(self) -> list[str]:
        """Markdown paths, the main file first."""
        return [self.main] + sorted(p for p in self.files if p != self.main)


def is_package(text: str) -> bool:
    return text.startswith(MAGIC)


def pack(pkg: Package) -> str:
    data = {"main": pkg.main, "files": dict(sorted(pkg.files.items())), "assets": dict(sorted(pkg.assets.items()))}
    return MAGIC + json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1) + "\n"


def unpack(text: str, name: str = MAIN) -> Package:
    """The package in `text`; a plain skill text is a single-file package named `name` (its file name)."""
    if not is_package(text):
        main = PurePosixPath(name).name or MAIN
        return Package(main, {main: text}, {}, single=True)
    data = json.loads(text[len(MAGIC):])
    return Package(data["main"], dict(data["files"]), dict(data.get("assets") or {}))


def main_text(text: str) -> str:
    """The text of the main file (SKILL.md of a package; the whole text of a plain skill)."""
    return unpack(text).main_text if is_package(text) else text


def with_main(text: str, new_main: str) -> str:
    """`text` with its main file replaced by `new_main`."""
    if not is_package(text):
        return new_main
    pkg = unpack(text)
    pkg.files[pkg.main] = new_main
    return pack(pkg)


def markdown_text(text: str) -> str:
    """Every Markdown file of the skill, one after the other (what screening compares new lines with)."""
    if not is_package(text):
        return text
    pkg = unpack(text)
    return "\n".join(pkg.files[p] for p in pkg.ordered())


# --------------------------------------------------------------------------- reading and writing folders


def _is_markdown(rel: str) -> bool:
    return rel.lower().endswith(".md")


def from_blobs(blobs: dict[str, bytes], modes: dict[str, bool] | None = None, where: str = "") -> str:
    """Pack a folder's files (path inside the folder -> bytes; `modes`: path -> executable). Markdown files must
    be UTF-8 text; a folder needs a SKILL.md."""
    if MAIN not in blobs:
        raise ConfigError(f"the skill folder has no {MAIN}", where or None, None,
                          f"a skill package is a folder with {MAIN} at its top (plus references/*.md, scripts ...)")
    total = sum(len(b) for b in blobs.values())
    if total > MAX_BYTES:
        raise ConfigError(f"the skill folder holds {total} bytes; skillopt trains packages of at most {MAX_BYTES}",
                          where or None, None, "move large data out of the skill folder")
    files: dict[str, str] = {}
    assets: dict[str, dict] = {}
    for rel, data in sorted(blobs.items()):
        executable = bool((modes or {}).get(rel))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if _is_markdown(rel):
                line = data[: exc.start].count(b"\n") + 1
                raise ConfigError(f"{rel} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                                  f"{where}/{rel}" if where else rel, line, "save it as UTF-8") from None
            assets[rel] = {"base64": base64.b64encode(data).decode("ascii"), "executable": executable}
            continue
        if _is_markdown(rel):
            files[rel] = text
        else:
            assets[rel] = {"text": text, "executable": executable}
    return pack(Package(MAIN, files, assets))


def read(path: str | Path) -> str:
    """The skill at `path` as text: a skill file's text, or a skill folder packed (hidden files and folders are
    left out). ConfigError when it is missing or not UTF-8."""
    p = Path(path)
    if p.is_dir():
        blobs: dict[str, bytes] = {}
        modes: dict[str, bool] = {}
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
            for name in filenames:
                f = Path(dirpath) / name
                if name.startswith(".") or f.is_symlink() or not f.is_file():
                    continue
                rel = f.relative_to(p).as_posix()
                blobs[rel] = f.read_bytes()
                modes[rel] = os.access(f, os.X_OK)
        return from_blobs(blobs, modes, str(p))
    if not p.is_file():
        raise ConfigError("skill file not found", str(path), None, "check the path given to --skill or `skill:`")
    data = p.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"the skill file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                          str(path), line, "save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.new` "
                          "and replace the file with FILE.new") from None


def exists(path: Path) -> bool:
    """A skill file, or a folder with a SKILL.md."""
    return path.is_file() or (path.is_dir() and (path / MAIN).is_file())


def contents(text: str) -> dict[str, bytes]:
    """Every file of a packed skill (path inside the folder -> bytes); a plain skill: {its name: text}."""
    pkg = unpack(text)
    out = {rel: body.encode("utf-8") for rel, body in pkg.files.items()}
    for rel, asset in pkg.assets.items():
        out[rel] = base64.b64decode(asset["base64"]) if "base64" in asset else asset["text"].encode("utf-8")
    return out


def install(text: str, root: Path, main_rel: str) -> list[str]:
    """Write the skill into `root`: its main file at `main_rel`, every other file of a package next to it (as in
    the folder). Scripts keep their executable bit. A package file never overwrites a file already there (the
    task's fixture): ConfigError. Returns the paths written, relative to `root`."""
    dest = root / main_rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not is_package(text):
        dest.write_text(text, encoding="utf-8")
        return [main_rel]
    pkg = unpack(text)
    written = []
    blobs = contents(text)
    for rel, data in blobs.items():
        target = dest if rel == pkg.main else dest.parent / rel
        if rel != pkg.main and target.exists():
            raise ConfigError(f"the skill package's file {rel} would overwrite {target.relative_to(root).as_posix()} "
                              "of the task's fixture", None, None,
                              "install the skill in a folder of its own (claude-code or codex `install: skill`, or a "
                              "`skill_path` such as .agents/skills/<name>/SKILL.md)")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if pkg.assets.get(rel, {}).get("executable"):
            target.chmod(0o755)
        written.append(target.relative_to(root).as_posix())
    return written


def markdown_files(skill_path: str, text: str) -> dict[str, str]:
    """Repository path -> text of every file skillopt may have changed: the skill file, or every Markdown file of
    the package (a commit of them changes exactly the files that differ)."""
    if not is_package(text):
        return {skill_path: text}
    return {f"{skill_path.rstrip('/')}/{rel}": body for rel, body in sorted(unpack(text).files.items())}


# --------------------------------------------------------------------------- showing


def diff(before: str, after: str, name: str) -> tuple[str, int, int]:
    """(unified diff, added, removed) from `before` to `after`; for a package one section per changed file, each
    named by its path under `name` (the configured skill folder)."""
    if not is_package(before) and not is_package(after):
        return diff_stats(before, after, name)
    old, new = unpack(before), unpack(after)
    parts, added, removed = [], 0, 0
    for rel in sorted(set(old.files) | set(new.files)):
        a, b = old.files.get(rel, ""), new.files.get(rel, "")
        if a == b:
            continue
        d, plus, minus = diff_stats(a, b, f"{name.rstrip('/')}/{rel}")
        parts.append(d)
        added += plus
        removed += minus
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts if p), added, removed


def prompt_files(text: str) -> list[dict]:
    """The Markdown files as the optimizer sees them (main first): [{"path", "text"}]."""
    pkg = unpack(text)
    return [{"path": p, "text": pkg.files[p]} for p in pkg.ordered()]


def asset_names(text: str) -> list[str]:
    return sorted(unpack(text).assets) if is_package(text) else []


def as_prompt(text: str) -> str:
    """The skill as one text for a chat model's system prompt: a plain skill as it is; a package's main file
    followed by each other Markdown file under its path (a chat model cannot open files)."""
    if not is_package(text):
        return text
    pkg = unpack(text)
    parts = [pkg.main_text.rstrip("\n")]
    for rel in pkg.ordered()[1:]:
        parts.append(f"---\n\nFile `{rel}` of this skill:\n\n{pkg.files[rel].rstrip()}")
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------- editing


def normalise_file(text: str, name: str) -> str:
    """An edit's `file` as stored: "" for the main file, else the path inside the folder (as the optimizer wrote
    it, with `./` and surrounding blanks removed)."""
    f = (name or "").strip().replace("\\", "/")
    while f.startswith("./"):
        f = f[2:]
    return "" if f in ("", unpack(text).main) else f


def file_problem(pkg: Package, current: dict[str, str], edit: Edit) -> tuple[str, str]:
    """(the file an edit changes, "") or ("", why it may not)."""
    f = edit.file
    if not f or f == pkg.main:
        return pkg.main, ""
    if pkg.single:
        return "", f"this skill is the single file {pkg.main}; an edit cannot name another file ({f!r})"
    parts = PurePosixPath(f).parts
    if f.startswith("/") or ".." in parts or any(p.startswith(".") for p in parts) or "//" in f:
        return "", f"file {f!r} is not a path inside the skill folder"
    if f in pkg.assets:
        return "", f"{f} is not Markdown: scripts and other files of the package are installed, never edited"
    if f in current:
        return f, ""
    if not _is_markdown(f):
        return "", f"{f} is not a Markdown file of the package: only .md files are edited or created"
    if not NEW_FILE_RE.match(f):
        return "", f"{f} does not exist: a new file can only be a reference, references/<name>.md"
    if edit.op != "add":
        return "", f"{f} does not exist yet: create a reference file with an `add` edit"
    return f, ""


def apply(text: str, edits: list[Edit], *, max_ops: int, max_lines: int, name: str) -> ApplyReport:
    """`edits.apply_edits` for any skill: each edit changes the file it names; `max_ops` applied edits and
    `max_lines` changed lines (added + removed, summed over the files) span the whole package. An edit naming
    a file it may not change is refused with the reason; nothing is skipped silently."""
    if not is_package(text) and all(not e.file for e in edits):
        return apply_edits(text, edits, max_ops=max_ops, max_lines=max_lines, name=name)
    pkg = unpack(text, name)
    original, current = dict(pkg.files), dict(pkg.files)
    results: list[EditResult] = []
    applied = 0
    for e in edits:
        if applied >= max_ops:
            results.append(EditResult(e, False, f"over op budget ({max_ops})"))
            continue
        rel, why = file_problem(pkg, current, e)
        if why:
            results.append(EditResult(e, False, why))
            continue
        one = apply_edits(current.get(rel, ""), [e], max_ops=1, max_lines=_UNLIMITED, name=rel)
        result = one.results[0]
        if not result.applied:
            results.append(result)
            continue
        trial = {**current, rel: one.after}
        total = sum(sum(diff_stats(original.get(p, ""), trial[p], p)[1:]) for p in trial
                    if trial[p] != original.get(p, ""))
        if total > max_lines:
            results.append(EditResult(e, False, f"over line budget: would make {total} changed lines across the "
                                                f"skill's files, budget {max_lines}"))
            continue
        results.append(result)
        current = trial
        applied += 1
    if not applied:
        after = text
    elif pkg.single:
        after = current[pkg.main]
    else:
        after = pack(Package(pkg.main, current, pkg.assets))
    d, added, removed = diff(text, after, name)
    return ApplyReport(text, after, results, d, added, removed)
