"""Screening of proposed edits before they are applied: what must never enter a skill, and what a reviewer must
look at twice. The gate measures score, not safety: an injected line bundled with three helpful rules scores
well, so every edit is screened line by line (a bundle is only as safe as its worst line).

Classes (the `edit_policy:` config keys), each set to `reject` (never applied), `flag` (applied if the gate
passes, and listed with the matching text at the top of the report, the PR body and the check summary) or
`allow`:

  answer         the expected answer (`reference`) of a val or test task: the gate would measure memorisation
  secret         a known secret value, a token/key shape, or a [REDACTED] mark (always rejected)
  invisible      invisible or bidirectional-control characters (zero-width, bidi overrides, tag characters)
  pipe_to_shell  downloaded or generated text piped into a shell (`curl ... | sh`, `bash <(wget ...)`)
  copy           text copied from task outputs (this step's answers) or task inputs, normalised (case,
                 punctuation, Unicode compatibility forms, invisible characters), short copies too
  override       instruction-override phrases ("ignore previous instructions", "you must always", "from now
                 on") and chat role markers (`system:`, `<|im_start|>`, `[INST]`)
  shell          shell commands: rm -rf, curl/wget, chmod/chown, sudo, package installs, reverse shells
  url            URLs, host names and IP addresses
  secret_name    names of secret-looking environment variables (OPENAI_API_KEY), reading the environment

Only new lines are screened: the content of an edit (and the heading an `add` creates) minus lines the skill
already has. `screen()` returns (kept, blocked, warnings) with report rows {"edit", "reason", "class", "match"}.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .redact import find_secrets, redact_obj, secret_env_names
from .types import Edit, Task

ACTIONS = ("reject", "flag", "allow")
CLASSES: dict[str, tuple[str, str]] = {  # class -> (default action, what it catches)
    "answer": ("reject", "the expected answer of a val or test task"),
    "secret": ("reject", "a secret value, a token or key shape, or a [REDACTED] mark (always rejected)"),
    "invisible": ("reject", "invisible or bidirectional-control characters"),
    "pipe_to_shell": ("reject", "downloaded or generated text piped into a shell or interpreter"),
    "copy": ("flag", "text copied from task outputs or task inputs (normalised; short copies too)"),
    "override": ("flag", "instruction-override phrases and chat role markers"),
    "shell": ("flag", "shell commands: rm -rf, curl/wget, chmod/chown, sudo, package installs"),
    "url": ("flag", "URLs, host names and IP addresses"),
    "secret_name": ("flag", "names of secret-looking environment variables, or reading the environment"),
}
DEFAULT_POLICY = {c: a for c, (a, _) in CLASSES.items()}
ALWAYS_REJECT = ("secret",)
_RANK = {"allow": 0, "flag": 1, "reject": 2}

COPY_LINE_WORDS = 4  # a new line of at least this many words found whole in a task output/input is a copy
COPY_WINDOW = 6  # ... and so is any run of this many consecutive words


@dataclass(frozen=True)
class Finding:
    cls: str
    match: str  # the matching text, safe to show (a secret is described, never shown)
    detail: str = ""


# --------------------------------------------------------------------------- detectors (one line at a time)

_I = re.IGNORECASE
_PIPE_TO_SHELL = [re.compile(p, _I) for p in (
    r"\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:ba|z|k|da|fi|c|tc)?sh\b(?!\s*\|)",
    r"\b(?:curl|wget|iwr|irm|fetch)\b[^\n|]*\|\s*(?:sudo\s+)?(?:python[0-9.]*|perl|ruby|node|php|source)\b(?!\s*\|)",
    r"\b(?:ba|z|k)?sh\s+(?:-c\s+)?[\"']?(?:<\(|\$\()\s*(?:curl|wget)",
    r"(?:\bsource|^\s*\.|[;&]\s*\.)\s+<\(\s*(?:curl|wget)",
    r"\beval\s+[\"']?\$\(\s*(?:curl|wget)",
    r"\b(?:iex|invoke-expression)\b.*\b(?:iwr|irm|invoke-webrequest|invoke-restmethod|downloadstring)\b",
    r"\b(?:iwr|irm|invoke-webrequest|invoke-restmethod)\b[^\n]*\|\s*iex\b",
)]
_SHELL = [re.compile(p, _I) for p in (
    r"\brm\s+(?:-[a-z]*[rf][a-z]*\s*)+",
    r"\b(?:curl|wget)\b",
    r"\b(?:chmod|chown)\s+\S+",
    r"\bsudo\s+\S+",
    r"\b(?:pip[0-9.]*|pipx|uv\s+pip|npm|pnpm|yarn|bun|gem|cargo|go|apt(?:-get)?|brew|yum|dnf|apk|conda|choco|winget)"
    r"\s+(?:install|add|i|get)\b",
    r"\b(?:nc|ncat|netcat)\s+(?:-\w+\s+)*-\w*[el]\w*",
    r"/dev/(?:tcp|udp)/",
    r"\bbase64\s+(?:-d|--decode)\b",
    r"\bdd\s+if=",
    r"\bmkfs(?:\.\w+)?\b",
    r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",
    r"\b(?:powershell|pwsh)\b[^\n]*-(?:enc|encodedcommand)\b",
    r"\bcrontab\s+-",
    r"(?:~|\$HOME)/\.(?:ssh|bashrc|zshrc|profile)\b|\bauthorized_keys\b",
)]
_TLDS = ("com|net|org|io|dev|ai|app|co|xyz|ru|cn|info|biz|me|example|test|local|internal|cloud|site|online|top|gg|"
         "ly|tk|us|uk|de|fr|jp|br|onion")
_URL = [re.compile(p, _I) for p in (
    r"\b(?:https?|ftp|sftp|ssh|git|file|wss?|s3|gs)://[^\s<>\"'`)\]]+",
    r"\bwww\.[a-z0-9-]+(?:\.[a-z0-9-]+)+",
    r"(?<![\w./-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:" + _TLDS + r")\b(?![\w-])(?!\.\w)",
    r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b",
)]
_OVERRIDE = [re.compile(p, _I) for p in (
    r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:(?:all|any|the|your|these|those|of|every)\s+)*"
    r"(?:previous|prior|above|earlier|preceding|system|original|other|safety|existing)\s+"
    r"(?:instructions?|rules?|prompts?|messages?|guidelines?|directions?|context|guardrails?)",
    r"\b(?:ignore|disregard|forget)\s+(?:everything|all)\s+(?:above|before|else|previous|prior)\b",
    r"\byou\s+must\s+always\b",
    r"\b(?:new|updated|real|actual|true)\s+(?:system\s+)?instructions?\s*:",
    r"\bfrom\s+now\s+on\b",
    r"\byou\s+are\s+now\b",
    r"\b(?:developer|god|jailbreak|dan|unrestricted)\s+mode\b",
    r"\b(?:reveal|print|show|output|repeat|leak|disclose)\s+(?:the\s+|your\s+|its\s+)?"
    r"(?:system\s+prompt|hidden\s+instructions|initial\s+instructions|instructions\s+above)",
    r"\bdo\s+not\s+(?:tell|inform|alert|mention\s+(?:this\s+)?to)\s+the\s+(?:user|reviewer|human)",
    r"^\s*(?:[#>*\-]+\s*)?\**(?:system|assistant|developer|human|user)\**\s*:",
    r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>",
    r"\[/?INST\]|<</?SYS>>",
    r"</?(?:system|assistant|developer)(?:[_-]prompt)?>",
)]
_SECRET_WORDS = r"(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|PRIVATE_KEY|ACCESS_KEY)"
_SECRET_NAME_RE = re.compile(r"\$?\{?\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_" + _SECRET_WORDS + r"(?:_[A-Z0-9]+)*"
                             r"|" + _SECRET_WORDS + r"_[A-Z0-9_]+)\b")
_ENV_READ = re.compile(r"\bprintenv\b|\benv\s*(?:\||>|$)|/proc/(?:self|\d+)/environ|\bos\.environ\b|"
                       r"\bos\.getenv\b|\bprocess\.env\b|\$ENV\{|\bgetenv\s*\(|\bGet-ChildItem\s+env:", re.I | re.M)
_EXTRA_INVISIBLE = {0x115F, 0x1160, 0x3164, 0xFFA0, 0x2028, 0x2029, 0x034F}


def invisible_chars(line: str) -> list[str]:
    """Names of the invisible characters in `line` (format characters, bidi controls, tag characters, control
    characters, variation selectors outside emoji). A zero-width joiner between two emoji is part of the emoji."""
    found = []
    for i, ch in enumerate(line):
        cp = ord(ch)
        cat = unicodedata.category(ch)
        bad = (cat == "Cf" or cp in _EXTRA_INVISIBLE or 0xE0100 <= cp <= 0xE01EF
               or (cat == "Cc" and ch not in "\t\n\r"))
        if bad and cp == 0x200D and 0 < i < len(line) - 1:  # emoji ZWJ sequence
            if unicodedata.category(line[i - 1]) in ("So", "Sk", "Mn") and unicodedata.category(line[i + 1]) == "So":
                bad = False
        if bad:
            name = f"U+{cp:04X} {unicodedata.name(ch, 'CONTROL CHARACTER')}"
            if name not in found:
                found.append(name)
    return found


def normalise(text: Any) -> str:
    """Text as compared for copies: Unicode compatibility forms folded, invisible characters dropped, case folded,
    punctuation and runs of whitespace collapsed to one space."""
    s = unicodedata.normalize("NFKC", str(text))
    s = "".join(ch for ch in s if unicodedata.category(ch) not in ("Cf", "Cc", "Mn") or ch in "\t\n")
    return " ".join(re.sub(r"[^\w\s]|_", " ", s.casefold()).split())


def _first(patterns: list[re.Pattern], line: str) -> str | None:
    for rx in patterns:
        m = rx.search(line)
        if m:
            return m.group(0).strip()
    return None


def _shown(text: str, limit: int = 80) -> str:
    text = "".join(ch if ch.isprintable() and ord(ch) not in _EXTRA_INVISIBLE else f"<U+{ord(ch):04X}>"
                   for ch in text.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Sources:
    """Task outputs and inputs, normalised, for the copy check."""

    def __init__(self, outputs: Iterable[str], inputs: Iterable[tuple[str, str]]):
        self.items: list[tuple[str, str]] = []  # (where, " normalised text ")
        for o in outputs:
            if o:
                self.items.append(("task output", f" {normalise(o)} "))
        for where, text in inputs:
            if text:
                self.items.append((where, f" {normalise(text)} "))

    def copy_in(self, line: str) -> tuple[str, str] | None:
        words = normalise(line).split()
        if not words:
            return None
        if len(words) >= COPY_LINE_WORDS:
            whole = f" {' '.join(words)} "
            for where, src in self.items:
                if whole in src:
                    return where, " ".join(words)
        for i in range(0, max(0, len(words) - COPY_WINDOW + 1)):
            chunk = f" {' '.join(words[i:i + COPY_WINDOW])} "
            for where, src in self.items:
                if chunk in src:
                    return where, chunk.strip()
        return None


def line_findings(line: str, sources: _Sources | None = None, secret_names: Iterable[str] = ()) -> list[Finding]:
    """Every class that one new line of an edit falls in (at most one finding per class), worst first."""
    out: list[Finding] = []
    secrets = find_secrets(line)
    if secrets:
        out.append(Finding("secret", secrets[0][1], secrets[0][0]))
    inv = invisible_chars(line)
    if inv:
        out.append(Finding("invisible", ", ".join(inv[:3])))
    m = _first(_PIPE_TO_SHELL, line)
    if m:
        out.append(Finding("pipe_to_shell", _shown(line)))
    if sources is not None:
        c = sources.copy_in(line)
        if c:
            out.append(Finding("copy", _shown(c[1]), c[0]))
    m = _first(_OVERRIDE, line)
    if m:
        out.append(Finding("override", _shown(m)))
    m = _first(_SHELL, line)
    if m:
        out.append(Finding("shell", _shown(m)))
    m = _first(_URL, line)
    if m:
        out.append(Finding("url", _shown(m)))
    names = set(secret_names)
    m2 = _SECRET_NAME_RE.search(line)
    extra = next((n for n in names if re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", line)), None)
    env_read = _ENV_READ.search(line)
    if m2 or extra or env_read:
        shown = m2.group(1) if m2 else extra or (env_read.group(0) if env_read else "")
        out.append(Finding("secret_name", _shown(shown)))
    return out


def new_lines(edit: Edit, skill: str = "") -> list[str]:
    """The lines an edit would bring into the skill that it does not already have."""
    have = {ln.strip() for ln in skill.splitlines() if ln.strip()}
    lines = (edit.content or "").splitlines()
    if edit.op == "add" and edit.anchor and edit.anchor.strip() not in have:
        lines = [edit.anchor, *lines]
    return [ln for ln in lines if ln.strip() and ln.strip() not in have]


def _answer_leak(content: str, refs: list[tuple[str, str, str]]) -> tuple[str, str, str] | None:
    text = f" {normalise(content)} "
    return next(((tid, split, v) for tid, split, v in refs if f" {v} " in text), None)


def effective_policy(policy: Mapping[str, str] | None) -> dict[str, str]:
    merged = {**DEFAULT_POLICY, **(policy or {})}
    for c in ALWAYS_REJECT:
        merged[c] = "reject"
    return merged


def screen(edits: list[Edit], held_out: list[Task], outputs: list[str], min_ref: int = 4, *,
           inputs: Iterable[tuple[str, str]] = (), skill: str = "",
           policy: Mapping[str, str] | None = None) -> tuple[list[Edit], list[dict], list[dict]]:
    """Screen each edit's new lines (see the module docstring). `outputs` are this step's task outputs, `inputs`
    extra (where, text) task inputs besides the held-out tasks', `skill` the current skill (its lines are not new).
    Returns (kept, blocked, warnings); blocked and warnings are report rows {"edit", "reason", "class", "match"}:
    a rejected edit gives one blocked row, a flagged edit one warning row per flagged class."""
    pol = effective_policy(policy)
    refs = []
    for t in held_out:
        values = t.reference if isinstance(t.reference, list) else [t.reference]
        for v in values:
            if isinstance(v, (str, int, float)) and not isinstance(v, bool) and len(normalise(v)) >= min_ref:
                refs.append((t.id, t.split or "held-out", normalise(v)))
    sources = _Sources(outputs, [*((f"the input of {t.split or 'held-out'} task {t.id!r}", t.prompt_text())
                                   for t in held_out), *inputs])
    names = [n for n in secret_env_names()]
    kept, blocked, warnings = [], [], []
    for e in edits:
        findings: list[Finding] = []
        fresh = new_lines(e, skill)
        leak = _answer_leak("\n".join(fresh), refs)
        if leak:
            findings.append(Finding("answer", _shown(leak[2]), f"{leak[1]} task {leak[0]!r}"))
        for line in fresh:
            for f in line_findings(line, sources, names):
                if all(f.cls != g.cls for g in findings):
                    findings.append(f)
        acting = [f for f in findings if pol[f.cls] != "allow"]
        worst = max((pol[f.cls] for f in acting), key=_RANK.__getitem__, default="allow")
        if worst == "reject":
            first = next(f for f in acting if pol[f.cls] == "reject")
            others = [f.cls for f in acting if f is not first]
            also = f" (also: {', '.join(others)})" if others else ""
            blocked.append({"edit": redact_obj(e.to_dict()), "class": first.cls, "match": first.match,
                            "reason": f"blocked: {_reason(first)}{also}"})
            continue
        for f in acting:
            warnings.append({"edit": redact_obj(e.to_dict()), "class": f.cls, "match": f.match, "reason": _reason(f)})
        kept.append(e)
    return kept, blocked, warnings


def _reason(f: Finding) -> str:
    if f.cls == "answer":
        return f"copies the expected answer of {f.detail} (held-out answers must not enter the skill)"
    if f.cls == "copy":
        return f"copies {f.detail} text verbatim: {f.match!r}" if f.detail == "task output" else \
            f"copies {f.detail} verbatim: {f.match!r}"
    what = {
        "secret": "contains a secret",
        "invisible": "contains invisible characters",
        "pipe_to_shell": "pipes downloaded text into a shell",
        "override": "contains an instruction-override phrase",
        "shell": "contains a shell command",
        "url": "contains a URL or host",
        "secret_name": "names a secret environment variable",
    }[f.cls]
    return f"{what}: {f.match!r} (edit_policy.{f.cls})"


# --------------------------------------------------------------------------- what a reviewer of the result sees


def flags_in_skill(report: Mapping[str, Any]) -> list[dict]:
    """The flag rows of a report whose edit is in the best skill (an accepted edit of the same step)."""
    accepted = {(a.get("step"), a.get("op"), a.get("anchor"), a.get("content"))
                for a in report.get("accepted_edits") or []}
    return [f for f in report.get("flags") or []
            if (f.get("step"), f["edit"].get("op"), f["edit"].get("anchor"), f["edit"].get("content")) in accepted]


def title_note(report: Mapping[str, Any]) -> str:
    """A suffix for the title of a pull request that carries flagged edits ("" when none)."""
    flags = flags_in_skill(report)
    if not flags:
        return ""
    classes = sorted({f.get("class", "flag") for f in flags})
    n = len({(f.get("step"), f["edit"].get("content")) for f in flags})
    return f" [flagged: {n} edit{'s' if n != 1 else ''}, {', '.join(classes)}]"
