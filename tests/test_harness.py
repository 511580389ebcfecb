"""The `command` harness target and the workspace scorers, driven by tests/fake_agent.py.

The fake agent stands in for what real agent CLIs cannot do on demand (hang, crash, write
outside the allowed paths); test_harness_cli.py drives the real `claude` and `codex` binaries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from skillopt_action import yamlfile
from skillopt_action.calls import DiskCache, Ledger, RetryPolicy
from skillopt_action.config import _model
from skillopt_action.errors import ConfigError
from skillopt_action.rollout import RolloutEngine
from skillopt_action.scorers import ScorerContext, check_tasks, score_completion, validate_spec
from skillopt_action.scorers.workspace import glob_match
from skillopt_action.targets import fingerprint_digest, make_target
from skillopt_action.tasks import Task, dir_digest, load_task_file
from skillopt_action.types import Completion
from skillopt_action.workspace import remove_workspace

FAKE = str(Path(__file__).with_name("fake_agent.py"))
SKILL = "# Greeter skill\n\nWrite files in uppercase.\n"


def target_settings(text: str, tmp_path: Path):
    """A TargetSettings built from YAML exactly as the config loader builds it (with line numbers)."""
    cfg = tmp_path / "skillopt.yml"
    cfg.write_text(text)
    raw = yamlfile.loads(text, str(cfg))
    return _model("target", raw["target"], str(cfg))


def fake_target(tmp_path: Path, extra: str = "", timeout: float = 30, command: str | None = None):
    command = command or f"[{sys.executable}, {FAKE}]"
    s = target_settings(f"""target:
  provider: command
  timeout: {timeout}
  options:
    command: {command}
    skill_path: AGENTS.md
    base_dir: {tmp_path / 'ws'}
{extra}""", tmp_path)
    return make_target(s, tmp_path)


def make_fixture(tmp_path: Path) -> Path:
    fx = tmp_path / "fixture"
    (fx / "src").mkdir(parents=True)
    (fx / "tests").mkdir()
    (fx / "src" / "app.py").write_text("def greet():\n    return 'hello'\n")
    (fx / "tests" / "test_app.py").write_text("from src.app import greet\n")
    (fx / "README.md").write_text("# demo\n")
    return fx


def task(prompt: str, fixture: Path | None = None, scorers=(), tid: str = "t1") -> Task:
    specs = tuple(validate_spec(s, "tasks.yml", 1) for s in scorers)
    return Task(id=tid, input=prompt, scorers=specs or (validate_spec({"type": "file_exists", "path": "x"}, None, 1),),
                fixture=str(fixture) if fixture else None, fixture_digest=dir_digest(fixture) if fixture else None,
                source="tasks.yml:1")


def ctx(tmp_path: Path) -> ScorerContext:
    return ScorerContext(project_root=tmp_path, command_timeout=20)


def git(ws: str, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, check=True).stdout


# --------------------------------------------------------------------------- one rollout

def test_rollout_gets_fixture_skill_and_baseline_and_is_scored_by_the_workspace(tmp_path):
    fx = make_fixture(tmp_path)
    t = task("WRITE out/greeting.txt :: {UPPER:hello world}\nPRINT finished with {SKILL}", fx, [
        {"type": "file_exists", "path": "out/greeting.txt"},
        {"type": "file_contains", "path": "out/greeting.txt", "value": ["HELLO", "WORLD"], "case_sensitive": True},
        {"type": "file_matches", "path": "out/greeting.txt", "pattern": r"^HELLO \w+$", "flags": "m"},
        {"type": "workspace_command", "run": "grep -q HELLO out/greeting.txt && test -f src/app.py"},
        {"type": "diff_paths", "allowed": ["out/"]},
    ])
    c = fake_target(tmp_path).run(SKILL, t, 0)
    ws = Path(c.workspace)
    assert c.error is None and c.exit_code == 0
    assert c.text == "finished with skill-seen"  # the agent found the skill where skill_path says
    assert (ws / "AGENTS.md").read_text() == SKILL
    assert (ws / "src" / "app.py").read_text() == (fx / "src" / "app.py").read_text()
    assert ws.parent.parent == tmp_path / "ws"
    # the baseline commit holds the fixture and the skill; the agent's file is new on top of it
    assert sorted(git(str(ws), "ls-files").split()) == ["AGENTS.md", "README.md", "src/app.py", "tests/test_app.py"]
    assert git(str(ws), "status", "--porcelain").strip() == "?? out/"
    assert c.extra["agent"] == "command" and c.extra["skill_path"] == "AGENTS.md"
    assert [m["role"] for m in c.transcript] == ["command", "stdout", "exit"]
    s = score_completion(t, c, ctx(tmp_path), 1.0)
    assert s.score == 1.0 and s.passed, s.feedback()
    # the same task with a skill that does not say "uppercase": the workspace shows it
    c2 = fake_target(tmp_path).run("# Greeter\n", t, 0)
    s2 = score_completion(t, c2, ctx(tmp_path), 1.0)
    assert c2.text == "finished with skill-absent"
    by = {r.scorer: r for r in s2.results}
    assert by["file_exists"].score == 1.0
    assert by["file_contains"].score == 0.0 and "'HELLO'" in by["file_contains"].feedback
    assert by["file_matches"].score == 0.0 and "not found in 'out/greeting.txt'" in by["file_matches"].feedback
    assert by["workspace_command"].score == 0.0 and "exit code 1" in by["workspace_command"].feedback
    assert s2.score == pytest.approx(2 / 5)
    for x in (c, c2):
        remove_workspace(x.workspace)
        assert not Path(x.workspace).parent.exists()


@pytest.mark.parametrize("via,command", [
    ("arg", None),  # list command: the prompt is appended
    ("arg", "[{py}, {fake}, --prompt-arg, '{{prompt}}']"),  # substituted for {prompt}
    ("arg", "'{py} {fake} --prompt-arg \"$1\"'"),  # string command: the prompt is $1
    ("file", "[{py}, {fake}, --prompt-file, '{{prompt_file}}']"),
    ("file", "'{py} {fake} --prompt-file \"$SKILLOPT_PROMPT_FILE\"'"),
    ("stdin", "'{py} {fake}'"),
])
def test_prompt_reaches_the_agent_however_it_is_passed(tmp_path, via, command):
    if command is None:
        command = f"[{sys.executable}, {FAKE}, --prompt-arg]"
    else:
        command = command.format(py=sys.executable, fake=FAKE)
    tgt = fake_target(tmp_path, f"    prompt_via: {via}\n", command=command)
    c = tgt.run(SKILL, task("PRINT got it; it's \"quoted\" & $HOME-safe\nWRITE a.txt :: x"), 0)
    assert c.error is None, c.error
    assert c.text == "got it; it's \"quoted\" & $HOME-safe"
    assert (Path(c.workspace) / "a.txt").is_file()
    # the prompt file lives next to the workspace, so it never shows up in the agent's diff
    assert git(c.workspace, "status", "--porcelain").strip() == "?? a.txt"
    remove_workspace(c.workspace)


def test_output_parsers_json_field_and_file(tmp_path):
    tgt = fake_target(tmp_path, "    output: json:result.answer\n")
    c = tgt.run(SKILL, task('PRINT thinking...\nJSON {"result": {"answer": "42"}, "usage": 1}'), 0)
    assert c.error is None and c.text == "42"
    c = tgt.run(SKILL, task('JSON {"other": 1}'), 0)
    assert c.error == "stdout JSON has no field 'result.answer'"
    assert score_completion(task("x"), c, ctx(tmp_path), 1.0).score == 0.0
    tgt = fake_target(tmp_path, "    output: file:answer.md\n")
    c = tgt.run(SKILL, task("WRITE answer.md :: the answer\nPRINT noise"), 0)
    assert c.error is None and c.text == "the answer"
    c = tgt.run(SKILL, task("PRINT no file"), 0)
    assert c.error == "the agent wrote no 'answer.md' (output: file:answer.md)"


def test_crashing_agent_scores_zero_with_its_stderr(tmp_path):
    t = task("STDERR boom: missing config\nEXIT 3", scorers=[{"type": "file_exists", "path": "x"}])
    c = fake_target(tmp_path).run(SKILL, t, 0)
    assert c.exit_code == 3
    assert c.error == "agent failed (exit code 3); stderr 'boom: missing config'"
    s = score_completion(t, c, ctx(tmp_path), 1.0)
    assert s.score == 0.0 and "run failed: agent failed (exit code 3)" in s.feedback()
    c = fake_target(tmp_path, "    allow_nonzero_exit: true\n").run(SKILL, task("WRITE x :: 1\nEXIT 3"), 0)
    assert c.error is None and c.exit_code == 3
    assert score_completion(t, c, ctx(tmp_path), 1.0).score == 1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_hanging_agent_is_killed_with_its_children_and_scores_zero(tmp_path, monkeypatch):
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_AGENT_PID_FILE", str(pid_file))
    t = task("WRITE started.txt :: yes\nHANG", scorers=[{"type": "file_exists", "path": "started.txt"}])
    t0 = time.monotonic()
    c = fake_target(tmp_path, timeout=1.5).run(SKILL, t, 0)
    assert time.monotonic() - t0 < 10
    assert c.error.startswith("timed out after 1.5s") and c.exit_code is None
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the agent's child process survived the timeout"
    assert c.transcript[-1] == {"role": "exit", "content": "timed out"}
    s = score_completion(t, c, ctx(tmp_path), 1.0)
    assert s.score == 0.0 and s.results[0].feedback == "run failed: timed out after 1.5s"


# --------------------------------------------------------------------------- the rollout engine

def engine(target, tmp_path, **kw) -> RolloutEngine:
    return RolloutEngine(target, ctx(tmp_path), ledger=Ledger(), cache=DiskCache(tmp_path / "cache"),
                         policy=RetryPolicy(attempts=1, base_delay=0), trajectories=tmp_path / "traj.jsonl", **kw)


def test_a_hang_does_not_stop_the_run_and_workspaces_are_removed(tmp_path):
    hang = task("HANG", scorers=[{"type": "file_exists", "path": "done.txt"}], tid="hangs")
    ok = task("WRITE done.txt :: ok", scorers=[{"type": "file_exists", "path": "done.txt"}], tid="works")
    eng = engine(fake_target(tmp_path, timeout=1), tmp_path, concurrency=2)
    out = eng.run(SKILL, [hang, ok], samples=2, label="baseline")
    assert [r.score.score for r in out["hangs"]] == [0.0, 0.0]
    assert all("timed out after 1s" in r.score.feedback() for r in out["hangs"])
    assert [r.score.score for r in out["works"]] == [1.0, 1.0]
    assert list((tmp_path / "ws").iterdir()) == []  # every rollout directory is gone
    lines = [json.loads(x) for x in (tmp_path / "traj.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all("workspace" not in x["completion"] for x in lines)
    # cached on the second run: same fingerprint, skill and task digest -> no agent runs at all
    again = engine(fake_target(tmp_path, timeout=1), tmp_path, concurrency=2)
    out2 = again.run(SKILL, [hang, ok], samples=2)
    assert all(r.cached for rs in out2.values() for r in rs)
    assert [r.score.score for r in out2["works"]] == [1.0, 1.0]


def test_keep_workspaces_keeps_them(tmp_path):
    ok = task("WRITE done.txt :: ok", scorers=[{"type": "file_exists", "path": "done.txt"}])
    out = engine(fake_target(tmp_path), tmp_path, keep_workspaces=True).run(SKILL, [ok])
    kept = list((tmp_path / "ws").iterdir())
    assert len(kept) == 1 and (kept[0] / "work" / "done.txt").read_text() == "ok\n"
    assert out["t1"][0].completion.workspace == str(kept[0] / "work")


def test_parallel_rollouts_get_distinct_workspaces_that_share_no_files(tmp_path):
    fx = make_fixture(tmp_path)
    # each rollout appends to the same fixture file and lists what it sees; sharing would show up. Each also notes
    # its start in a log outside the workspaces, and its score checks that another rollout had started before it
    # finished: run one after another, the first rollout would see only its own start (no wall-clock bound)
    starts = tmp_path / "starts.log"
    t = [task(f"APPEND {starts} :: start\nAPPEND README.md :: touched\nSLEEP 1\nWRITE mine.txt :: x", fx,
              [{"type": "file_contains", "path": "README.md", "value": "touched"},
               {"type": "workspace_command", "run": "test $(grep -c touched README.md) = 1 && test $(ls | wc -l) = 5"},
               {"type": "workspace_command", "run": f"test $(grep -c start {starts}) -ge 2"}],
              tid=f"t{i}") for i in range(6)]
    eng = engine(fake_target(tmp_path), tmp_path, concurrency=6, keep_workspaces=True)
    out = eng.run(SKILL, t, samples=1)
    wss = {r.completion.workspace for rs in out.values() for r in rs}
    assert len(wss) == 6
    assert all(r.score.score == 1.0 for rs in out.values() for r in rs), [r.score.feedback() for rs in out.values()
                                                                         for r in rs]
    assert (fx / "README.md").read_text() == "# demo\n"  # the fixture itself is never written


def test_remove_workspace_refuses_directories_it_did_not_create(tmp_path):
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not a skillopt rollout workspace"):
        remove_workspace(mine)
    assert (mine / "keep.txt").exists()


# --------------------------------------------------------------------------- diff_paths

def test_diff_paths_catches_writes_outside_the_allowed_paths(tmp_path):
    fx = make_fixture(tmp_path)
    spec = [{"type": "diff_paths", "allowed": ["src/**", "docs/*.md"]}]
    sneaky = task("WRITE src/app.py :: def greet(): return 'hi'\nWRITE docs/notes.md :: n\n"
                  "WRITE tests/test_app.py :: assert True\nWRITE ../escape.txt :: out\nWRITE AGENTS.md :: rewritten", fx,
                  spec)
    c = fake_target(tmp_path).run(SKILL, sneaky, 0)
    r = score_completion(sneaky, c, ctx(tmp_path), 1.0).results[0]
    assert r.score == 0.0
    assert "'tests/test_app.py'" in r.feedback and "'../escape.txt'" in r.feedback
    assert "src/app.py" not in r.feedback and "AGENTS.md" not in r.feedback  # allowed / the skill itself
    ok = task("WRITE src/new/module.py :: x\nWRITE docs/a.md :: y", fx, spec)
    c = fake_target(tmp_path).run(SKILL, ok, 0)
    r = score_completion(ok, c, ctx(tmp_path), 1.0).results[0]
    assert (r.score, r.feedback) == (1.0, "all 2 changed path(s) allowed")
    # deleting a file is a change too; docs/*.md does not reach into subdirectories
    gone = task("WRITE docs/deep/x.md :: y", fx, spec)
    c = fake_target(tmp_path).run(SKILL, gone, 0)
    os.remove(Path(c.workspace) / "README.md")
    r = score_completion(gone, c, ctx(tmp_path), 1.0).results[0]
    assert r.score == 0.0 and "'README.md'" in r.feedback and "'docs/deep/x.md'" in r.feedback


@pytest.mark.parametrize("path,pattern,ok", [
    ("src/a.py", "src/**", True), ("src/x/y/a.py", "src/**", True), ("src/x/a.py", "src/*.py", False),
    ("src/a.py", "src/*.py", True), ("a.py", "**/*.py", True), ("x/y/a.py", "**/*.py", True),
    ("srcx/a.py", "src/", False), ("src/a/b", "src/", True), ("README.md", "*.md", True),
    ("docs/README.md", "*.md", False),
])
def test_glob_semantics(path, pattern, ok):
    assert glob_match(path, pattern) is ok


# --------------------------------------------------------------------------- workspace scorers on their own

def test_file_scorers_refuse_paths_that_leave_the_workspace(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    t = task("PRINT x", scorers=[{"type": "file_contains", "path": "link.txt", "value": "SECRET"}])
    c = fake_target(tmp_path).run(SKILL, t, 0)
    os.symlink(secret, Path(c.workspace) / "link.txt")
    r = score_completion(t, c, ctx(tmp_path), 1.0).results[0]
    assert r.score == 0.0 and r.feedback == "'link.txt' points outside the workspace"


def test_workspace_scorers_without_a_workspace_score_zero_and_say_why(tmp_path):
    t = task("x", scorers=[{"type": "file_exists", "path": "a"}, {"type": "workspace_command", "run": "true"}])
    s = score_completion(t, Completion(text="hi"), ctx(tmp_path), 1.0)
    assert s.score == 0.0 and all("need an agent harness target" in r.feedback for r in s.results)


def test_workspace_command_stdout_score_and_timeout(tmp_path):
    t = task("WRITE n.txt :: 0.75", scorers=[
        {"type": "workspace_command", "run": "echo score: $(cat n.txt)", "score_from": "stdout"},
        {"type": "workspace_command", "run": "sleep 30", "timeout": 0.5}])
    c = fake_target(tmp_path).run(SKILL, t, 0)
    s = score_completion(t, c, ctx(tmp_path), 1.0)
    assert s.results[0].score == 0.75 and s.results[0].feedback == "score 0.75 from stdout"
    assert s.results[1].score == 0.0 and s.results[1].feedback.startswith("timed out after 0.5s")


@pytest.mark.parametrize("spec,message,fix", [
    ({"type": "file_contains", "path": "a.txt"}, "scorer 'file_contains' needs `value`", "value"),
    ({"type": "file_exists", "path": "a", "value": "x"}, "scorer 'file_exists' has no setting 'value'",
     "allowed keys for file_exists: path, type, weight"),
    ({"type": "file_exists"}, "scorer 'file_exists' needs `path`", "src/app.py"),
    ({"type": "file_matches", "path": "../a", "pattern": "x"}, "must stay inside the workspace", "without `..`"),
    ({"type": "file_matches", "path": "a", "pattern": "("}, "invalid pattern", "regular expression"),
    ({"type": "diff_paths"}, "needs `allowed`", "src/**"),
    ({"type": "diff_paths", "allowed": ["/etc/*"]}, "must be relative", "src/**"),
    ({"type": "workspace_command", "run": "true", "score_from": "stderr"}, "unknown `score_from`", "exit_code"),
])
def test_workspace_scorer_errors_name_file_line_and_fix(tmp_path, spec, message, fix):
    f = tmp_path / "tasks.yml"
    lines = [f"    {k}: {json.dumps(v)}" for k, v in spec.items() if k != "type"]
    f.write_text("tasks:\n  - id: a\n    input: do it\n    scorers:\n      - type: "
                 + spec["type"] + "\n" + "\n".join("    " + x for x in lines) + "\n")
    with pytest.raises(ConfigError) as e:
        load_task_file(f)
    assert e.value.file == str(f) and e.value.line == 5
    assert message in e.value.message and fix in (e.value.fix or "")


# --------------------------------------------------------------------------- config, env, fingerprint

def test_option_errors_name_the_line_and_the_allowed_options(tmp_path):
    with pytest.raises(ConfigError) as e:
        fake_target(tmp_path, "    promptvia: arg\n")
    assert e.value.line == 8 and "unknown option 'promptvia'" in e.value.message
    assert "prompt_via" in e.value.fix
    with pytest.raises(ConfigError) as e:
        fake_target(tmp_path, "    prompt_via: pipe\n")
    assert e.value.line == 8 and "use stdin, arg or file" in e.value.fix
    with pytest.raises(ConfigError) as e:
        fake_target(tmp_path, command="[no-such-agent-binary]")
    assert e.value.line == 5 and "agent binary 'no-such-agent-binary' not found" in e.value.message
    with pytest.raises(ConfigError) as e:
        fake_target(tmp_path, command="'my-agent {prompt}'")
    assert "cannot contain {prompt}" in e.value.message
    s = target_settings("target:\n  provider: command\n  options: {skill_path: /etc/AGENTS.md, command: [true]}\n",
                        tmp_path)
    with pytest.raises(ConfigError, match="must be a relative path inside the workspace") as e:
        make_target(s, tmp_path)
    assert e.value.line == 3
    s = target_settings("target:\n  provider: command\n", tmp_path)
    with pytest.raises(ConfigError, match="needs `options.command`"):
        make_target(s, tmp_path)


def test_missing_claude_binary_is_a_config_error_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    s = target_settings("target:\n  provider: claude-code\n  options:\n    install: skill\n", tmp_path)
    with pytest.raises(ConfigError) as e:
        make_target(s, tmp_path)
    assert "agent binary 'claude' not found" in e.value.message
    assert "npm install -g @anthropic-ai/claude-code" in e.value.fix
    s = target_settings("target:\n  provider: codex\n  options:\n    binary: ./bin/codex\n", tmp_path)
    with pytest.raises(ConfigError) as e:
        make_target(s, tmp_path)
    assert e.value.line == 4 and "npm install -g @openai/codex" in e.value.fix


def test_agent_env_drops_secrets_passes_the_key_and_expands_vars(tmp_path, monkeypatch):
    monkeypatch.setenv("UNRELATED_API_TOKEN", "leak-me-not")
    monkeypatch.setenv("AGENT_KEY", "sk-agent-123")
    monkeypatch.setenv("GREETING", "hola")
    s = target_settings(f"""target:
  provider: command
  api_key_env: AGENT_KEY
  options:
    command: [bash, -c, 'env > {tmp_path}/seen-env.txt']
    env: {{MODE: "${{GREETING}}-mode", LITERAL_SECRET: "s3cr3t"}}
""", tmp_path)
    tgt = make_target(s, tmp_path)
    c = tgt.run(SKILL, task("x"), 0)
    assert c.error is None
    seen = dict(line.split("=", 1) for line in (tmp_path / "seen-env.txt").read_text().splitlines() if "=" in line)
    assert "UNRELATED_API_TOKEN" not in seen
    assert seen["AGENT_KEY"] == "sk-agent-123" and seen["MODE"] == "hola-mode"
    assert seen["SKILLOPT_WORKSPACE"] == c.workspace
    fp = json.dumps(tgt.fingerprint())
    assert "sk-agent-123" not in fp and "s3cr3t" not in fp and "hola" not in fp
    assert "sk-agent-123" not in json.dumps(c.to_dict())


def test_fingerprint_is_stable_across_processes_and_tracks_what_matters(tmp_path):
    extra = "    env: {A: '${HOME}'}\n"
    here = fingerprint_digest(fake_target(tmp_path, extra).fingerprint())
    code = f"""
import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from test_harness import fake_target
from skillopt_action.targets import fingerprint_digest
print(fingerprint_digest(fake_target(Path({str(tmp_path)!r}), {extra!r}).fingerprint()))
"""
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "HOME": "/elsewhere"}).stdout.strip()
    assert other == here
    assert fingerprint_digest(fake_target(tmp_path, "    prompt_via: arg\n").fingerprint()) != here
    # where workspaces go does not change what a rollout produces
    s = fake_target(tmp_path, extra).fingerprint()
    assert str(tmp_path / "ws") not in json.dumps(s)


def test_check_tasks_accepts_workspace_scorers(tmp_path):
    t = task("x", scorers=[{"type": "diff_paths", "allowed": []}, {"type": "file_matches", "path": "a",
                                                                      "pattern": "b"}])
    check_tasks([t], ctx(tmp_path))


def test_no_thread_leaks_after_timeouts(tmp_path):
    before = threading.active_count()
    fake_target(tmp_path, timeout=0.5).run(SKILL, task("HANG"), 0)
    assert threading.active_count() == before
