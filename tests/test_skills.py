"""Several skills per repository (`skills:`): config errors, the CLI running each skill with a failing one not
blocking the others, and one scheduled Action run opening one pull request (with its own branch and check) per
skill on the fake GitHub, a skill package's reference file included."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import github_project as gp
import pytest
import yaml
from github_project import REPO
from helpers import write_project
from model_server import ModelServer, Text
from test_loop import RULE, responder

from skillopt_action import api, package
from skillopt_action.cli import main
from skillopt_action.config import load_config, load_configs
from skillopt_action.errors import ConfigError, ConfigErrors
from skillopt_action.github.comments import MARKER


def two_skills(root: Path, base_url: str, extra_skill: dict | None = None) -> Path:
    """The capitals project of helpers.py with its skill listed twice under `skills:` (and `extra_skill`)."""
    cfg_path = write_project(root, base_url=base_url)
    cfg = yaml.safe_load(cfg_path.read_text())
    (root / "skills" / "capitals").mkdir(parents=True)
    (root / "skills" / "capitals" / "SKILL.md").write_text((root / "SKILL.md").read_text())
    (root / "skills" / "capitals" / "references").mkdir()
    (root / "skills" / "capitals" / "references" / "cities.md").write_text("# Cities\n\n## Notes\n\n- Cities.\n")
    entries = [{"name": "plain", "skill": cfg.pop("skill"), "tasks": cfg.pop("tasks")},
               {"name": "folder", "skill": "skills/capitals", "tasks": "evals/*.yml", "branch": "bots/capitals",
                "loop": {"edit_budget": {"ops": 2}}, "budget": {"max_calls": 500}}]
    cfg["skills"] = entries + ([extra_skill] if extra_skill else [])
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg_path


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test-secret-value")
    with ModelServer(responder=responder) as s:
        yield s


def test_each_skill_is_its_own_config_with_shared_settings_and_its_overrides(tmp_path):
    cfg_path = two_skills(tmp_path, "http://127.0.0.1:9/v1")
    plain, folder = load_configs(cfg_path)
    assert (plain.name, plain.skill, plain.branch) == ("plain", "SKILL.md", None)
    assert (folder.name, folder.skill, folder.branch) == ("folder", "skills/capitals", "bots/capitals")
    assert folder.loop.edit_budget.ops == 2 and plain.loop.edit_budget.ops == 4
    assert folder.loop.batch_size == plain.loop.batch_size == 4, "the shared loop settings stay"
    assert folder.max_calls == 500 and plain.max_calls is None
    assert plain.target.model == folder.target.model == "target-model"
    assert api.skills(cfg_path) == ["plain", "folder"]
    with pytest.raises(ConfigError, match=r"lists 2 skills \(plain, folder\)") as exc:
        load_config(cfg_path)
    assert "--skill-name" in exc.value.fix and exc.value.line is not None
    with pytest.raises(ConfigError, match="no skill named 'nope'"):
        load_config(cfg_path, "nope")


@pytest.mark.parametrize(("edit", "message", "fix"), [
    (lambda c: c.update(skill="SKILL.md"), "`skill:` and `skills:` cannot both be given", "each entry of `skills:`"),
    (lambda c: c["skills"][1].update(name="plain"), "two skills are named 'plain'", "its own `name:`"),
    (lambda c: c["skills"][1].pop("tasks"), "missing required key 'tasks'", "tasks:"),
    (lambda c: c["skills"][1].update(name="Bad Name"), "`skills.1.name`", ""),
    (lambda c: c["skills"][1]["loop"].update(epochs=0), "`loop.epochs` is 0 but must be >= 1", ""),
    (lambda c: c["skills"][1].update(skill="skills/none"), "skill file 'skills/none' not found", ""),
])
def test_bad_skills_lists_get_a_clear_error_with_line_and_fix(tmp_path, edit, message, fix):
    cfg_path = two_skills(tmp_path, "http://127.0.0.1:9/v1")
    cfg = yaml.safe_load(cfg_path.read_text())
    edit(cfg)
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with pytest.raises(ConfigError) as exc:
        load_configs(cfg_path)
    errors = ConfigErrors.of(exc.value)
    hit = next((e for e in errors if message in e.message), None)
    assert hit is not None, [e.message for e in errors]
    assert hit.line and hit.file == str(cfg_path) and fix in (hit.fix or "")


def test_a_folder_without_skill_md_is_named_in_the_error(tmp_path):
    cfg_path = write_project(tmp_path, base_url="http://127.0.0.1:9/v1")
    (tmp_path / "skills" / "empty").mkdir(parents=True)
    cfg_path.write_text(cfg_path.read_text().replace("skill: SKILL.md", "skill: skills/empty"))
    with pytest.raises(ConfigError, match="skill folder 'skills/empty' has no SKILL.md") as exc:
        load_config(cfg_path)
    assert "references/*.md" in exc.value.fix


def test_cli_optimizes_each_skill_and_a_failing_one_does_not_stop_the_others(tmp_path, server, capsys):
    broken = {"name": "broken", "skill": "SKILL.md", "tasks": "evals/missing/*.yml"}
    cfg_path = two_skills(tmp_path, server.openai_base_url, broken)
    out = tmp_path / "runs"
    code = main(["optimize", "--config", str(cfg_path), "--out", str(out), "--memory", str(tmp_path / "mem.jsonl")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "error: [broken]" in err and "evals/missing/*.yml" in err and "the others ran" in err
    plain = (out / "plain" / "latest" / "best_skill.md").read_text()
    assert RULE in plain
    folder = out / "folder" / "latest" / "best_skill"
    assert RULE in (folder / "SKILL.md").read_text() and (folder / "references" / "cities.md").is_file()
    # each skill keeps its own evidence memory: --memory FILE becomes FILE-<name>
    assert not (tmp_path / "mem.jsonl").exists()
    for name in ("plain", "folder"):
        rows = [json.loads(x) for x in (tmp_path / f"mem-{name}.jsonl").read_text().splitlines()]
        assert rows and rows[0]["edit"]["content"] == RULE
    # --skill-name runs one skill only (and `report` finds that skill's runs)
    assert main(["eval", "--config", str(cfg_path), "--out", str(out), "--skill-name", "folder", "-q"]) == 0
    assert len(list((out / "folder").glob("*-eval"))) == 1 and not list((out / "plain").glob("*-eval"))
    capsys.readouterr()
    assert main(["validate", "--config", str(cfg_path), "--skill-name", "plain"]) == 0
    assert re.search(r"skill plain \S*SKILL.md, 16 tasks", capsys.readouterr().out)


def test_merge_finds_the_skill_its_shards_name_and_picks_one_skill_among_several(tmp_path, server, capsys):
    cfg_path = two_skills(tmp_path, server.openai_base_url)
    base = (tmp_path / "SKILL.md").read_text()
    shards = tmp_path / "shards"
    edited = tmp_path / "edited"  # each skill with the rule added to its SKILL.md
    shutil.copytree(tmp_path / "skills" / "capitals", edited)
    (edited / "SKILL.md").write_text((edited / "SKILL.md").read_text() + "\n" + RULE + "\n")
    for name in ("plain", "folder"):
        skill = api.read_skill(tmp_path / load_config(cfg_path, name).skill)
        candidate = base + "\n" + RULE + "\n" if name == "plain" else api.read_skill(edited)
        for i in (1, 2):
            api.compare(cfg_path, base_skill=skill, candidate_skill=candidate, shard=(i, 2),
                        out=shards / f"shard-{i}" / name, skill_name=name)
    with pytest.raises(ConfigError, match=r"the skill \(of a config listing several\) differs") as exc:
        api.merge([shards], cfg_path)
    assert "--skill-name NAME" in exc.value.fix
    # one skill's directories: the merge reads the skill's name from its shards
    plain = api.merge([shards / "shard-1" / "plain", shards / "shard-2" / "plain"], cfg_path, out=tmp_path / "m1")
    assert plain.baseline_skill == base and plain.report.sharding["shards"] == 2
    # all of them side by side: --skill-name picks that skill's shards (the CLI too)
    folder = api.merge([shards], cfg_path, out=tmp_path / "m2", skill_name="folder")
    assert package.is_package(folder.baseline_skill) and folder.improved
    assert main(["merge", str(shards), "--config", str(cfg_path), "--skill-name", "plain", "-q",
                 "--out", str(tmp_path / "m3")]) == 0
    assert "passes the gate" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="no shard of the skill 'other' here"):
        api.merge([shards], cfg_path, skill_name="other")


def test_compare_with_several_skills_asks_which(tmp_path, server, capsys):
    cfg_path = two_skills(tmp_path, server.openai_base_url)
    code = main(["compare", "--config", str(cfg_path), "--base-skill", str(tmp_path / "SKILL.md"), "--skill",
                 str(tmp_path / "SKILL.md")])
    assert code == 2 and "add --skill-name NAME" in capsys.readouterr().err


# --------------------------------------------------------------------------- the Action: one run, one PR per skill


@pytest.fixture
def world(tmp_path, monkeypatch):
    yield from gp.world_fixture(tmp_path, monkeypatch)


STYLE = "# Style\n\n## Voice\n\n- Keep answers short.\n"
PACKAGE_SKILL = gp.SKILL.replace("name: shout", "name: loud")


def package_responder():
    """The optimizer proposes the UPPERCASE rule; for the package skill, in its reference file."""
    def respond(req):
        if req.model == "optimizer-model":
            if "<skill_file path=" in (req.last_user_text or ""):
                return Text(json.dumps({"analysis": "capitals", "edits": [
                    {"file": "references/style.md", "op": "add", "anchor": "## Voice", "content": gp.EDIT_TEXT,
                     "rationale": "failing tasks expect capitals"}]}))
            return Text(gp.edits_json(gp.EDIT_TEXT))
        return Text(gp.answer(req.system or "", req.last_user_text or ""))
    return respond


def two_skill_repo(world, *, broken: bool) -> None:
    """The world's repository with a second skill, the package skills/loud (and a broken third one)."""
    ws = world.ws
    (ws / "skills" / "loud" / "references").mkdir(parents=True)
    (ws / "skills" / "loud" / "SKILL.md").write_text(PACKAGE_SKILL)
    (ws / "skills" / "loud" / "references" / "style.md").write_text(STYLE)
    (ws / "skills" / "loud" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    cfg = yaml.safe_load(gp.CONFIG)
    cfg.pop("skill"), cfg.pop("tasks")
    cfg["skills"] = [{"name": "shout", "skill": "SKILL.md", "tasks": "evals/*.yml"},
                     {"name": "broken", "skill": "SKILL.md", "tasks": "evals/none/*.yml"},
                     {"name": "loud", "skill": "skills/loud", "tasks": "evals/*.yml"}]
    if not broken:
        del cfg["skills"][1]
    (ws / ".github" / "skillopt.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    gp.git(ws, "add", "-A")
    gp.git(ws, "commit", "-qm", "two skills")
    world.main_sha = gp.git(ws, "rev-parse", "HEAD")
    world.repo.refs["refs/heads/main"] = world.fake.import_git(world.repo, ws, "main")
    world.model.responder = package_responder()


def test_one_scheduled_run_opens_one_pr_per_skill_with_its_own_branch_and_check(world):
    two_skill_repo(world, broken=True)
    ws = world.ws
    code = world.run(world.env("schedule", gp.schedule_payload(REPO)))
    assert code == 2, world.summary()  # the broken skill's invalid tasks: exit 2, after the others ran
    pulls = {p["head_ref"]: p for p in world.fake.pulls_of(REPO)}
    assert sorted(pulls) == ["skillopt/loud", "skillopt/shout"]
    shout, loud = pulls["skillopt/shout"], pulls["skillopt/loud"]
    assert gp.EDIT_TEXT in world.fake.files_at(world.repo, "skillopt/shout")["SKILL.md"].decode()
    loud_files = world.fake.files_at(world.repo, "skillopt/loud")
    assert gp.EDIT_TEXT in loud_files["skills/loud/references/style.md"].decode()
    assert loud_files["skills/loud/SKILL.md"].decode() == PACKAGE_SKILL, "only the changed file differs"
    assert loud_files["skills/loud/run.sh"].decode() == "#!/bin/sh\necho hi\n"
    assert "skills/loud/references/style.md" in loud["body"] and "in `references/style.md`" in loud["body"]
    for pr, name in ((shout, "shout"), (loud, "loud")):
        (check,) = world.fake.checks_on(REPO, pr["head_sha"])
        assert check["name"] == f"skillopt / gate ({name})" and check["conclusion"] == "success"
    out = world.outputs()
    assert out["pr-operation"] == "shout:created,broken:failed,loud:created"
    assert out["pr-number"] == str(shout["number"])
    summary = world.summary()
    assert "2 of 3 skills ran; failed: broken" in summary and "skill broken failed (invalid config or tasks)" in summary
    memory = ws / ".skillopt" / "memory"  # each skill has its own rejected-edit memory
    assert sorted(p.name for p in memory.glob("rejected-edits*")) == ["rejected-edits-loud.jsonl",
                                                                      "rejected-edits-shout.jsonl"]

    # the next weekly run finds the same proposals: both pull requests are left as they are (the package is read
    # back from the branch through the contents API, folder listings included)
    heads = {b: world.repo.refs[f"refs/heads/{b}"] for b in pulls}
    assert world.run(world.env("schedule", gp.schedule_payload(REPO))) == 2
    assert world.outputs()["pr-operation"] == "shout:unchanged,broken:failed,loud:unchanged"
    assert {b: world.repo.refs[f"refs/heads/{b}"] for b in pulls} == heads
    assert len(world.fake.pulls_of(REPO)) == 2
    assert not [w for w in world.writes() if re.search(r"/git/|/pulls", w["path"])]
    assert package.is_package(api.read_skill(ws / "skills" / "loud"))


def test_a_pull_request_gets_one_gate_check_per_skill_and_the_package_is_read_from_its_head(world):
    two_skill_repo(world, broken=False)
    upper = STYLE + "- Write every answer in UPPERCASE.\n"
    sha = gp.commit_on_branch(world.ws, "edit-loud", {"skills/loud/references/style.md": upper,
                                                      "skills/loud/references/extra.md": "# Extra\n"})
    gp.git(world.ws, "checkout", "-q", "main")
    world.fake.import_git(world.repo, world.ws, sha)
    world.repo.refs["refs/heads/edit-loud"] = sha
    pr = world.fake.add_pull(world.repo, head_ref="edit-loud", head_sha=sha, base_ref="main", title="Louder")
    payload = gp.pull_request_payload(REPO, pr["number"], "edit-loud", sha, world.main_sha)
    assert world.run(world.env("pull_request", payload)) == 0
    checks = {c["name"]: c for c in world.fake.checks_on(REPO, sha)}
    assert sorted(checks) == ["skillopt / gate (loud)", "skillopt / gate (shout)"]
    assert checks["skillopt / gate (shout)"]["conclusion"] == "neutral"
    loud = checks["skillopt / gate (loud)"]
    assert loud["conclusion"] == "success", loud["output"]
    assert "gated 2 skills" in world.summary()


# --------------------------------------------------------------------------- comment commands on several skills


def skills_pr(world, files: dict[str, str], branch: str = "edit-skills") -> tuple[dict, str]:
    sha = gp.commit_on_branch(world.ws, branch, files)
    gp.git(world.ws, "checkout", "-q", "main")
    world.fake.import_git(world.repo, world.ws, sha)
    world.repo.refs[f"refs/heads/{branch}"] = sha
    return world.fake.add_pull(world.repo, head_ref=branch, head_sha=sha, base_ref="main", title="Edit skills"), sha


def test_eval_comment_gates_each_skill_the_pr_changes_with_its_own_check(world):
    two_skill_repo(world, broken=False)
    upper = STYLE + "- Write every answer in UPPERCASE.\n"
    pr, sha = skills_pr(world, {"skills/loud/references/style.md": upper})
    payload = world.comment(pr["number"], "/skillopt eval", "maintainer")
    assert world.run(world.env("issue_comment", payload)) == 0, world.summary()
    (check,) = world.fake.checks_on(REPO, sha)  # shout is not changed: no check, no rollouts for it
    assert check["name"] == "skillopt / gate (loud)" and check["conclusion"] == "success", check["output"]
    (bot,) = world.bot_comments(pr["number"])
    assert "**`/skillopt eval`**, requested by @maintainer: skill `loud`: ✅ passes the gate" in bot["body"]
    assert "| val |" in bot["body"] and "shout" not in bot["body"]

    # both skills changed: one check each, one sticky result with a section per skill (shout's edit does nothing)
    pr2, sha2 = skills_pr(world, {"skills/loud/references/style.md": upper,
                                  "SKILL.md": gp.SKILL + "\n- Be kind.\n"}, branch="edit-both")
    payload = world.comment(pr2["number"], "/skillopt eval", "maintainer")
    assert world.run(world.env("issue_comment", payload)) == 0, world.summary()
    checks = {c["name"]: c["conclusion"] for c in world.fake.checks_on(REPO, sha2)}
    assert checks == {"skillopt / gate (shout)": "failure", "skillopt / gate (loud)": "success"}
    (bot,) = world.bot_comments(pr2["number"])
    assert "1 of 2 changed skills pass the gate" in bot["body"]
    assert bot["body"].index("### `shout`: ❌ does not pass") < bot["body"].index("### `loud`: ✅ passes")

    # `skill=` scores the one named even when the pull request does not change it
    payload = world.comment(pr["number"], "/skillopt eval skill=shout", "maintainer")
    assert world.run(world.env("issue_comment", payload)) == 0, world.summary()
    assert {c["name"] for c in world.fake.checks_on(REPO, sha)} == {"skillopt / gate (loud)",
                                                                    "skillopt / gate (shout)"}
    (bot,) = world.bot_comments(pr["number"])
    assert "**`/skillopt eval skill=shout`**, requested by @maintainer: skill `shout`: ❌" in bot["body"]


def test_optimize_comment_on_several_skills_asks_which_then_trains_the_named_package(world):
    two_skill_repo(world, broken=False)
    pr, sha = skills_pr(world, {"skills/loud/references/style.md": STYLE + "\n"})
    for body, phrase in (("/skillopt optimize epochs=1", "lists 2 skills; say which one to train"),
                         ("/skillopt optimize skill=louder", "lists no skill named `louder`")):
        payload = world.comment(pr["number"], body, "maintainer")
        assert world.run(world.env("issue_comment", payload)) == 0, world.summary()
        assert world.model_calls() == 0 and world.fake.checks_on(REPO, sha) == []
        reply = world.bot_comments(pr["number"])[-1]["body"]
        assert reply.startswith(f"> {body}") and phrase in reply and "It lists: `shout`, `loud`." in reply
        assert "Nothing was run." in reply and MARKER not in reply
    assert "`/skillopt optimize skill=shout epochs=1`" in world.bot_comments(pr["number"])[0]["body"]

    payload = world.comment(pr["number"], "/skillopt optimize skill=loud epochs=1", "maintainer")
    assert world.run(world.env("issue_comment", payload)) == 0, world.summary()
    head = world.repo.refs["refs/heads/edit-skills"]
    assert head != sha and world.repo.commits[head]["parents"] == [sha]
    files = world.fake.files_at(world.repo, head)
    assert gp.EDIT_TEXT in files["skills/loud/references/style.md"].decode()
    assert files["skills/loud/SKILL.md"].decode() == PACKAGE_SKILL and files["SKILL.md"].decode() == gp.SKILL
    (check,) = world.fake.checks_on(REPO, head)
    assert check["name"] == "skillopt / gate (loud)" and check["conclusion"] == "success"
    sticky = [c for c in world.bot_comments(pr["number"]) if MARKER in c["body"]]
    assert len(sticky) == 1 and "`/skillopt optimize skill=loud epochs=1`" in sticky[0]["body"]
    assert "The `skillopt / gate (loud)` check on it: success" in sticky[0]["body"]


def test_skill_name_on_a_one_skill_config_is_refused_with_the_reason(world):
    pr, sha = world.open_pr("feature", gp.UPPER_SKILL)
    payload = world.comment(pr["number"], "/skillopt eval skill=shout", "maintainer")
    assert world.run(world.env("issue_comment", payload)) == 0
    reply = world.bot_comments(pr["number"])[-1]["body"]
    assert "config has a single skill; leave out `skill=`" in reply and world.model_calls() == 0
    assert world.fake.checks_on(REPO, sha) == []


# --------------------------------------------------------------------------- the sharded gate on several skills


def test_sharded_gate_merges_each_skills_shards_into_its_own_check_as_the_unsharded_gate(world):
    two_skill_repo(world, broken=False)
    pr, sha = skills_pr(world, {"SKILL.md": gp.UPPER_SKILL,
                                "skills/loud/references/style.md": STYLE + "- Write every answer in UPPERCASE.\n"})
    payload = gp.pull_request_payload(REPO, pr["number"], "edit-skills", sha, world.main_sha)
    downloads = world.ws / "skillopt-shards"  # what actions/download-artifact@v4 makes of the matrix's artifacts
    for i in (1, 2):
        assert world.run(world.env("pull_request", payload, shard=f"{i}/2")) == 0, world.summary()
        assert world.writes() == [], "a shard job posts nothing"
        shard_path = Path(world.outputs()["shard-path"])
        manifests = {p.parent.name: json.loads(p.read_text()) for p in shard_path.glob("*/shard.json")}
        assert sorted(manifests) == ["loud", "shout"]  # one run directory per changed skill, in one artifact
        assert {m["skill_name"]: (m["shard"], m["of"]) for m in manifests.values()} == {"loud": (i, 2),
                                                                                        "shout": (i, 2)}
        shutil.copytree(shard_path, downloads / f"skillopt-shard-{i}")
    assert world.fake.checks_on(REPO, sha) == []

    assert world.run(world.env("pull_request", payload, command="merge")) == 0, world.summary()
    assert world.model_calls() == 0, "every rollout came from the shards"
    merged = {c["name"]: (c["conclusion"], c["output"]["title"]) for c in world.fake.checks_on(REPO, sha)}
    assert sorted(merged) == ["skillopt / gate (loud)", "skillopt / gate (shout)"]
    assert {c for c, _ in merged.values()} == {"success"}
    report = json.loads(Path(world.outputs()["report-path"]).read_text())
    assert report["sharding"]["shards"] == 2 and report["sharding"]["merge_calls"] == 0

    # the same pull request gated unsharded: the same checks, with the same figures
    assert world.run(world.env("pull_request", payload)) == 0, world.summary()
    assert world.model_calls() > 0
    single = {c["name"]: (c["conclusion"], c["output"]["title"]) for c in world.fake.checks_on(REPO, sha)}
    assert single == merged

    # a merge job that got only one skill's artifacts: that skill's check fails naming the cause, the other passes
    for d in downloads.glob("*/loud"):
        shutil.rmtree(d)
    assert world.run(world.env("pull_request", payload, command="merge")) == 2, world.summary()
    checks = {c["name"]: c for c in world.fake.checks_on(REPO, sha)}
    assert checks["skillopt / gate (shout)"]["conclusion"] == "success"
    loud = checks["skillopt / gate (loud)"]
    assert loud["conclusion"] == "failure" and "no shard of the skill 'loud'" in loud["output"]["summary"]
    assert "skill loud could not be gated (invalid config or tasks)" in world.summary()


def test_eval_on_the_default_branch_scores_each_skill_and_a_failing_one_does_not_stop_the_others(world):
    two_skill_repo(world, broken=True)
    code = world.run(world.env("workflow_dispatch", gp.dispatch_payload(REPO, {}), command="eval"))
    assert code == 2, world.summary()  # the broken skill's invalid tasks, after the others were scored
    summary = world.summary()
    assert "evaluated 2 of 3 skills on the default branch; failed: broken" in summary
    assert "skill broken failed (invalid config or tasks)" in summary
    assert not world.fake.pulls_of(REPO) and not [w for w in world.writes() if "/check-runs" in w["path"]]
    reports = {p.parent.name.split("-")[1]: json.loads(p.read_text())
               for p in world.tmp.rglob("eval-*/report.json")}
    assert sorted(reports) == ["loud", "shout"]
    assert all(set(r["scores"]) == {"train", "val", "test"} for r in reports.values())
    assert world.outputs()["baseline-score"], "the outputs show the first skill's scores"
