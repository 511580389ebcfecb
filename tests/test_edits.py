"""Tests for skillopt_action.edits: anchored, budgeted, protected edits to a skill document."""

from __future__ import annotations

import json
import subprocess

import pytest
from unidiff import PatchSet

from skillopt_action.edits import (
    OPS,
    ApplyReport,
    Edit,
    apply_edits,
    diff_stats,
    parse_edit,
    protected_spans,
)

SKILL = """\
---
name: support-agent
description: Answers support tickets
---
# Support agent

You answer customer tickets.

## Rules
- Be polite.
- Cite the relevant help article.

### Escalation
Escalate billing disputes to a human.

## Output format
Reply in plain text.
"""


def apply(skill, *edits, max_ops=10, max_lines=200, **kw) -> ApplyReport:
    return apply_edits(skill, list(edits), max_ops=max_ops, max_lines=max_lines, **kw)


def only(report: ApplyReport):
    assert len(report.results) == 1
    return report.results[0]


# --------------------------------------------------------------------------- parse_edit / Edit


def test_parse_edit_accepts_each_op():
    assert parse_edit({"op": "add", "anchor": "## Rules", "content": "- New rule."}).anchor == "## Rules"
    assert parse_edit({"op": "add", "content": "x"}).anchor is None
    assert parse_edit({"op": "add", "anchor": "", "content": "x"}).anchor is None
    e = parse_edit({"op": "insert_after", "anchor": "Be polite.", "content": "- Be brief.",
                    "rationale": "tickets were long", "source": "failure", "support": 3, "tasks": ["t1", "t2"]})
    assert (e.op, e.rationale, e.source, e.support, e.tasks) == (
        "insert_after", "tickets were long", "failure", 3, ("t1", "t2"))
    assert parse_edit({"op": "replace", "anchor": "a", "content": "b"}).content == "b"
    d = parse_edit({"op": "delete", "anchor": "a"})
    assert d.content == "" and set(OPS) == {"add", "insert_after", "replace", "delete"}


@pytest.mark.parametrize(
    "d, message",
    [
        (["op", "add"], "must be an object"),
        ({"anchor": "x", "content": "y"}, "has no 'op'"),
        ({"op": "append", "content": "y"}, "unknown op 'append'; expected one of add, insert_after, replace, delete"),
        ({"op": 3, "content": "y"}, "op must be a string"),
        ({"op": "replace", "content": "y"}, "replace needs an anchor"),
        ({"op": "delete", "anchor": "   "}, "delete needs an anchor"),
        ({"op": "insert_after", "anchor": None, "content": "y"}, "insert_after needs an anchor"),
        ({"op": "add", "anchor": "## Rules"}, "add needs content"),
        ({"op": "insert_after", "anchor": "x", "content": " \n "}, "insert_after needs content"),
        ({"op": "replace", "anchor": "x", "content": ""}, "replace needs content (use delete"),
        ({"op": "delete", "anchor": "x", "content": "y"}, "delete takes no content"),
        ({"op": "replace", "anchor": ["x"], "content": "y"}, "anchor must be a string, got list"),
        ({"op": "add", "content": 5}, "content must be a string, got int"),
        ({"op": "add", "content": "x", "rationale": 1}, "rationale must be a string"),
        ({"op": "add", "content": "x", "source": "both"}, "source must be 'failure' or 'success'"),
        ({"op": "add", "content": "x", "support": 0}, "support must be a positive integer"),
        ({"op": "add", "content": "x", "support": True}, "support must be a positive integer"),
        ({"op": "add", "content": "x", "support": "2"}, "support must be a positive integer"),
        ({"op": "add", "content": "x", "tasks": "t1"}, "tasks must be a list"),
        ({"op": "add", "content": "x", "tasks": ["t1", 2]}, "task id strings"),
        ({"op": "add", "content": "x", "target": "y"}, "unknown edit field(s): target"),
        ({"op": "add", "anchor": "##", "content": "x"}, "heading without text"),
        ({"op": "add", "anchor": "####### Deep", "content": "x"}, "at most 6"),
    ],
)
def test_parse_edit_rejects_bad_input_with_clear_message(d, message):
    with pytest.raises(ValueError) as err:
        parse_edit(d)
    assert message in str(err.value)


def test_to_dict_from_dict_round_trip_through_json():
    e = Edit("insert_after", "Be polite.", "- Be brief.", "long replies", "success", 2, ("a", "b"))
    d = json.loads(json.dumps(e.to_dict()))
    assert d["tasks"] == ["a", "b"]
    assert Edit.from_dict(d) == e
    with pytest.raises(ValueError):
        Edit.from_dict({**d, "op": "rewrite"})


def test_key_normalises_whitespace_and_case():
    a = Edit("replace", "Reply in  plain\ntext.", "Reply in Markdown.")
    b = Edit("replace", " reply in plain text. ", "reply  in markdown.\n", rationale="other", support=4)
    assert a.key() == b.key()
    assert a.key() != Edit("replace", "Reply in plain text.", "Reply in HTML.").key()
    assert a.key() != Edit("insert_after", "Reply in plain text.", "Reply in Markdown.").key()
    assert a.key() != Edit("replace", "Reply in plain", "Reply in Markdown.").key()
    # add: the heading's '#' marks do not change which section it targets
    assert Edit("add", "## Rules", "- x").key() == Edit("add", "rules", "- x").key()
    assert Edit("add", None, "- x").key() == Edit("add", "", "- x").key()
    assert Edit("add", None, "- x").key() != Edit("add", "Rules", "- x").key()
    assert isinstance(a.key(), str)


# --------------------------------------------------------------------------- anchors


def test_exact_anchor_replace_changes_only_the_match():
    r = apply(SKILL, Edit("replace", "Reply in plain text.", "Reply in Markdown with a short summary."))
    assert only(r).applied and only(r).reason == ""
    assert r.after == SKILL.replace("Reply in plain text.", "Reply in Markdown with a short summary.")


def test_whitespace_normalised_anchor_maps_back_to_original_span():
    skill = "# S\n\nAlways   check the\n  order id before   refunding.\nThen reply.\n"
    r = apply(skill, Edit("replace", "check the order id\tbefore refunding.", "verify the order id first."))
    assert only(r).applied
    assert r.after == "# S\n\nAlways   verify the order id first.\nThen reply.\n"


def test_missing_anchor_reason_quotes_first_60_chars():
    anchor = "This sentence is nowhere in the skill and is longer than sixty characters in total."
    r = apply(SKILL, Edit("delete", anchor))
    res = only(r)
    assert not res.applied
    assert res.reason == f"anchor not found: '{anchor[:60]}'"
    assert r.after == SKILL and not r.changed and r.diff == ""


def test_anchor_match_is_case_sensitive_no_fuzzy_guessing():
    r = apply(SKILL, Edit("replace", "reply in plain text.", "x"))
    assert only(r).reason.startswith("anchor not found")
    r = apply(SKILL, Edit("replace", "Reply in plain txt.", "x"))
    assert only(r).reason.startswith("anchor not found")


def test_ambiguous_exact_anchor_is_not_applied():
    skill = "# S\n- Be polite.\n- Be polite to managers too.\n"
    r = apply(skill, Edit("replace", "Be polite", "Be kind"))
    assert only(r).reason == "anchor is ambiguous: 2 matches"
    assert r.after == skill


def test_overlapping_occurrences_count_as_ambiguous():
    r = apply("# S\naaa\n", Edit("replace", "aa", "b"))
    assert only(r).reason == "anchor is ambiguous: 2 matches"


def test_ambiguous_whitespace_normalised_anchor_is_not_applied():
    skill = "# S\nsay\nhello now\n\nsay  hello now\n"
    r = apply(skill, Edit("delete", "say hello"))
    assert only(r).reason == "anchor is ambiguous: 2 matches"


# --------------------------------------------------------------------------- insert_after


def test_insert_after_goes_after_the_line_holding_the_anchor_end():
    r = apply(SKILL, Edit("insert_after", "Be polite", "- Keep replies under 150 words."))
    assert only(r).applied and only(r).changed_lines == 1
    assert "- Be polite.\n- Keep replies under 150 words.\n- Cite the relevant" in r.after


def test_insert_after_multiline_anchor_and_content():
    r = apply(SKILL, Edit("insert_after", "- Be polite.\n- Cite the", "- Use the customer's name.\n- Sign with 'Support team'."))
    assert only(r).applied and only(r).changed_lines == 2
    assert ("- Cite the relevant help article.\n- Use the customer's name.\n- Sign with 'Support team'.\n\n"
            "### Escalation") in r.after


def test_insert_after_last_line_without_trailing_newline_keeps_convention():
    r = apply("# S\nlast line", Edit("insert_after", "last line", "new line"))
    assert r.after == "# S\nlast line\nnew line"


def test_insert_after_content_already_present_is_not_applied():
    r = apply(SKILL, Edit("insert_after", "## Rules", "- Be polite."))
    assert only(r).reason == "already present"
    # present only as part of a longer line is not "present"
    r = apply(SKILL, Edit("insert_after", "## Rules", "- Be"))
    assert only(r).applied


# --------------------------------------------------------------------------- replace / delete


def test_replace_phrase_inside_a_line_does_not_split_it():
    r = apply(SKILL, Edit("replace", "plain text", "plain text (no Markdown)\n"))
    assert "Reply in plain text (no Markdown).\n" in r.after


def test_replace_whole_lines_keeps_next_line_separate():
    r = apply(SKILL, Edit("replace", "- Be polite.\n", "- Be polite and brief."))
    assert "- Be polite and brief.\n- Cite the relevant" in r.after


def test_replace_with_identical_text_reports_no_change():
    r = apply(SKILL, Edit("replace", "Be polite.", "Be polite."))
    res = only(r)
    assert not res.applied and res.reason == "no change"
    assert r.applied == [] and not r.changed and r.after == SKILL


def test_delete_removes_line_that_becomes_blank():
    r = apply(SKILL, Edit("delete", "- Be polite."))
    assert only(r).applied and only(r).changed_lines == 1
    assert "## Rules\n- Cite the relevant help article.\n" in r.after
    assert r.after.count("\n") == SKILL.count("\n") - 1


def test_delete_inside_a_line_keeps_the_rest():
    r = apply(SKILL, Edit("delete", " relevant"))
    assert "- Cite the help article.\n" in r.after


def test_delete_paragraph_between_blank_lines_leaves_one_blank_line():
    skill = "# S\n\nFirst.\n\nObsolete advice.\n\nLast.\n"
    r = apply(skill, Edit("delete", "Obsolete advice."))
    assert r.after == "# S\n\nFirst.\n\nLast.\n"


def test_delete_last_line_without_trailing_newline():
    r = apply("# S\nkeep\ndrop me", Edit("delete", "drop me"))
    assert r.after == "# S\nkeep"


# --------------------------------------------------------------------------- add / headings


def test_add_to_section_keeps_list_tight_and_goes_before_next_heading():
    skill = "# S\n\n## Tone\n- Be polite.\n\n## Output\nPlain text.\n"
    r = apply(skill, Edit("add", "## Tone", "- Be brief."))
    assert r.after == "# S\n\n## Tone\n- Be polite.\n- Be brief.\n\n## Output\nPlain text.\n"
    assert only(r).changed_lines == 1


def test_add_heading_match_ignores_hashes_case_whitespace_and_closing_hashes():
    skill = "# S\n\n##   Output   FORMAT ##\nPlain text.\n"
    r = apply(skill, Edit("add", "output format", "Sign every reply."))
    assert r.after == "# S\n\n##   Output   FORMAT ##\nPlain text.\n\nSign every reply.\n"
    r2 = apply(skill, Edit("add", "### Output Format", "Sign every reply."))
    assert r2.after == r.after


def test_add_to_section_with_subsection_goes_before_the_subheading():
    r = apply(SKILL, Edit("add", "Rules", "- Never promise refunds."))
    assert only(r).applied
    assert ("## Rules\n- Be polite.\n- Cite the relevant help article.\n- Never promise refunds.\n\n"
            "### Escalation\nEscalate billing disputes") in r.after


def test_add_to_nested_subsection_stops_at_the_next_higher_heading():
    r = apply(SKILL, Edit("add", "### Escalation", "Escalate legal threats too."))
    assert ("### Escalation\nEscalate billing disputes to a human.\n\nEscalate legal threats too.\n\n"
            "## Output format") in r.after


def test_add_to_section_whose_body_is_empty():
    skill = "# S\n## Empty\n## Next\nx\n"
    r = apply(skill, Edit("add", "Empty", "Now filled."))
    assert r.after == "# S\n## Empty\n\nNow filled.\n\n## Next\nx\n"


def test_add_to_last_section_and_to_end_of_document():
    r = apply(SKILL, Edit("add", "Output format", "Sign as 'Support'."))
    assert r.after == SKILL + "\nSign as 'Support'.\n"
    r = apply(SKILL, Edit("add", None, "## Notes\nBe careful."))
    assert r.after == SKILL + "\n## Notes\nBe careful.\n"
    r = apply("# S\nx\n\n\n", Edit("add", "", "y"))
    assert r.after == "# S\nx\n\ny\n\n\n"


def test_add_to_empty_document_and_to_front_matter_only():
    assert apply("", Edit("add", None, "Hello.")).after == "Hello.\n"
    fm = "---\nname: x\n---\n"
    assert apply(fm, Edit("add", None, "Hello.")).after == fm + "\nHello.\n"


def test_add_ignores_headings_inside_code_fences_and_front_matter():
    skill = ("---\n# Rules: not a heading, a YAML comment\n---\n# S\n\n```bash\n# Rules\necho hi\n```\n\n"
             "## Rules\n- a\n")
    r = apply(skill, Edit("add", "Rules", "- b"))
    assert only(r).applied
    assert r.after == skill + "- b\n"


def test_add_matches_setext_headings():
    skill = "Skill\n=====\n\nIntro.\n\nRules\n-----\n- a\n\nOther\n-----\nz\n"
    r = apply(skill, Edit("add", "## Rules", "- b"))
    assert r.after == "Skill\n=====\n\nIntro.\n\nRules\n-----\n- a\n- b\n\nOther\n-----\nz\n"


def test_add_ambiguous_heading_narrowed_by_level_or_rejected():
    skill = "# S\n## Examples\nA\n### Examples\nB\n## Next\n"
    r = apply(skill, Edit("add", "### Examples", "C"))
    assert r.after == "# S\n## Examples\nA\n### Examples\nB\n\nC\n\n## Next\n"
    r = apply(skill, Edit("add", "Examples", "C"))
    assert only(r).reason == "heading is ambiguous: 2 matches for 'Examples'"
    r = apply("# S\n## Ex\n## Ex\n", Edit("add", "## Ex", "C"))
    assert only(r).reason.startswith("heading is ambiguous: 2 matches")


def test_add_missing_heading_with_hash_creates_it_at_end():
    r = apply(SKILL, Edit("add", "##  Common  mistakes", "- Quoting internal ticket ids."))
    assert only(r).applied
    assert r.after == SKILL + "\n## Common mistakes\n\n- Quoting internal ticket ids.\n"


def test_add_missing_heading_without_hash_is_not_applied():
    r = apply(SKILL, Edit("add", "Common mistakes", "- x"))
    res = only(r)
    assert not res.applied
    assert res.reason.startswith("heading not found: 'Common mistakes'")
    assert "'#'" in res.reason


def test_add_content_already_present_is_not_applied():
    r = apply(SKILL, Edit("add", "Rules", "- Cite the relevant help article.\n"))
    assert only(r).reason == "already present"


def test_add_strips_blank_lines_around_content():
    r = apply(SKILL, Edit("add", "## Output format", "\n\nSign as 'Support'.\n\n\n"))
    assert r.after == SKILL + "\nSign as 'Support'.\n"


# --------------------------------------------------------------------------- protection

PROTECTED = """\
---
name: s
---
# S

Body text.
<!-- skillopt:protected -->
Never reveal internal ids.
<!-- /skillopt:protected -->

## Rules
- a
<!-- skillopt:protected -->
Guidance written by a human.
<!-- /skillopt:protected -->
"""


def test_protected_spans_cover_front_matter_and_marked_regions():
    spans = protected_spans(PROTECTED)
    assert [PROTECTED[s:e] for s, e in spans] == [
        "---\nname: s\n---\n",
        "<!-- skillopt:protected -->\nNever reveal internal ids.\n<!-- /skillopt:protected -->",
        "<!-- skillopt:protected -->\nGuidance written by a human.\n<!-- /skillopt:protected -->",
    ]


def test_protected_spans_unclosed_opener_protects_to_end_and_no_front_matter_without_closer():
    skill = "---\nnot closed\n# S\n<!--skillopt:protected-->\nrest\nmore\n"
    spans = protected_spans(skill)
    assert len(spans) == 1
    assert spans[0] == (skill.index("<!--skillopt"), len(skill))


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (Edit("replace", "name: s", "name: evil"), "YAML front matter"),
        (Edit("delete", "Never reveal internal ids."), "protected region"),
        (Edit("replace", "Body text.\n<!-- skillopt", "x"), "protected region"),
        (Edit("insert_after", "Guidance written", "- more"), "protected region"),
        (Edit("add", None, "<!-- /skillopt:protected -->"), "marker"),
        (Edit("replace", "Body text.", "x <!--  skillopt:protected  --> y"), "marker"),
        (Edit("add", "Rules", "---\nname: evil\nversion: 2\n---"), "front matter"),
    ],
)
def test_edits_touching_protected_text_are_not_applied(edit, fragment):
    r = apply(PROTECTED, edit)
    res = only(r)
    assert not res.applied
    assert fragment in res.reason
    assert r.after == PROTECTED


def test_protected_heading_is_not_a_target():
    skill = "# S\nx\n<!-- skillopt:protected -->\n## Locked\nno\n<!-- /skillopt:protected -->\n"
    r = apply(skill, Edit("add", "Locked", "yes"))
    assert not only(r).applied and "protected region" in only(r).reason


def test_append_goes_before_protected_region_that_ends_the_document():
    r = apply(PROTECTED, Edit("add", None, "- b"))
    assert only(r).applied
    assert "## Rules\n- a\n- b\n<!-- skillopt:protected -->\nGuidance" in r.after
    # same for adding to the last section
    r = apply(PROTECTED, Edit("add", "Rules", "- c"))
    assert "## Rules\n- a\n- c\n<!-- skillopt:protected -->" in r.after


def test_append_goes_before_consecutive_trailing_protected_regions():
    skill = ("# S\ntext\n<!-- skillopt:protected -->\nA\n<!-- /skillopt:protected -->\n\n"
             "<!-- skillopt:protected -->\nB\n<!-- /skillopt:protected -->\n")
    r = apply(skill, Edit("add", None, "more"))
    assert r.after.startswith("# S\ntext\n\nmore\n\n<!-- skillopt:protected -->\nA")


def test_unclosed_protected_opener_protects_to_end_of_document():
    skill = "# S\nfree\n<!-- skillopt:protected -->\nlocked\n## Later\nalso locked\n"
    r = apply(skill, Edit("replace", "also locked", "open"))
    assert "protected region" in only(r).reason
    r = apply(skill, Edit("add", "Later", "x"))
    assert "protected region" in only(r).reason
    r = apply(skill, Edit("add", None, "appended"))
    assert r.after == "# S\nfree\n\nappended\n\n<!-- skillopt:protected -->\nlocked\n## Later\nalso locked\n"


def test_insert_after_anchor_on_same_line_as_opener_is_refused():
    skill = "# S\nintro <!-- skillopt:protected -->\nlocked\n<!-- /skillopt:protected -->\n"
    r = apply(skill, Edit("insert_after", "intro", "x"))
    assert only(r).reason.startswith("insertion point is inside the protected region")


def test_content_with_plain_horizontal_rule_is_allowed():
    r = apply(SKILL, Edit("add", "Output format", "---\nEnd of reply."))
    assert only(r).applied


def test_edit_that_would_create_front_matter_is_refused():
    skill = "Title\nkey: value\n---\nbody\n"
    r = apply(skill, Edit("replace", "Title", "---"))
    assert only(r).reason == "would change the front matter or a protected region"
    assert r.after == skill


# --------------------------------------------------------------------------- budgets


def test_op_budget_counts_only_applied_edits():
    edits = [
        Edit("add", "Rules", "- one"),
        Edit("delete", "not in the skill"),
        Edit("add", "Rules", "- two"),
        Edit("add", "Rules", "- three"),
        Edit("add", "Rules", "- four"),
    ]
    r = apply(SKILL, *edits, max_ops=2)
    assert [x.applied for x in r.results] == [True, False, True, False, False]
    assert r.results[1].reason.startswith("anchor not found")
    assert [x.reason for x in r.results[3:]] == ["over op budget (2)", "over op budget (2)"]
    assert r.applied == [edits[0], edits[2]]
    assert "- one\n- two\n" in r.after and "- three" not in r.after


def test_zero_op_budget_applies_nothing():
    r = apply(SKILL, Edit("add", None, "x"), max_ops=0)
    assert only(r).reason == "over op budget (0)" and r.after == SKILL


def test_line_budget_skips_too_large_edit_and_still_applies_a_later_small_one():
    big = "\n".join(f"- rule {i}" for i in range(10))
    edits = [
        Edit("add", "Rules", "- small one"),  # 1 line
        Edit("add", "Output format", big),  # 1 blank + 10 lines -> 12 total, over 5
        Edit("replace", "Reply in plain text.", "Reply in Markdown."),  # 2 lines -> 3 total
        Edit("add", None, "one more"),  # blank + line -> 5 total
        Edit("add", "Rules", "- last"),  # -> 6, over
    ]
    r = apply(SKILL, *edits, max_lines=5)
    assert [x.applied for x in r.results] == [True, False, True, True, False]
    assert r.results[1].reason == "over line budget: would make 12 changed lines, budget 5"
    assert r.results[4].reason == "over line budget: would make 6 changed lines, budget 5"
    assert [x.changed_lines for x in r.results] == [1, 0, 2, 2, 0]
    assert r.added_lines + r.removed_lines == 5
    assert "- rule 0" not in r.after and "Reply in Markdown." in r.after


def test_line_budget_counts_from_the_original_not_per_edit():
    # replacing a line twice: the second edit's diff from the original is still 2 lines
    r = apply(SKILL, Edit("replace", "Reply in plain text.", "Reply in Markdown."),
              Edit("replace", "Reply in Markdown.", "Reply in HTML."), max_lines=2)
    assert [x.applied for x in r.results] == [True, True]
    assert (r.added_lines, r.removed_lines) == (1, 1)


def test_edits_apply_sequentially_to_previous_results():
    r = apply(SKILL, Edit("add", "## Tone", "Friendly."), Edit("insert_after", "Friendly.", "Never sarcastic."))
    assert r.after.endswith("## Tone\n\nFriendly.\nNever sarcastic.\n")


def test_invalid_budget_and_arguments_raise():
    with pytest.raises(ValueError):
        apply_edits(SKILL, [], max_ops=-1, max_lines=10)
    with pytest.raises(ValueError):
        apply_edits(SKILL, [], max_ops=1, max_lines=True)
    with pytest.raises(TypeError):
        apply_edits(SKILL, [{"op": "add", "content": "x"}], max_ops=1, max_lines=10)
    with pytest.raises(TypeError):
        apply_edits(b"bytes", [], max_ops=1, max_lines=10)
    with pytest.raises(ValueError):
        apply_edits(SKILL, [], max_ops=1, max_lines=10, name="a\tb")


def test_directly_built_invalid_edit_is_reported_not_raised():
    r = apply(SKILL, Edit("rewrite", None, "x"), Edit("replace", "Be polite.", ""))
    assert r.results[0].reason.startswith("invalid edit: unknown op 'rewrite'")
    assert r.results[1].reason == "invalid edit: replace needs content (use delete to remove text)"
    assert r.after == SKILL


# --------------------------------------------------------------------------- diff


def test_diff_stats_format_and_counts_match_unidiff():
    before = "a\nb\nc\n"
    after = "a\nB\nc\nd\n"
    diff, added, removed = diff_stats(before, after, name="AGENTS.md")
    assert diff.startswith("--- a/AGENTS.md\n+++ b/AGENTS.md\n@@ ")
    patch = PatchSet(diff)
    assert (added, removed) == (patch.added, patch.removed) == (2, 1)
    assert diff_stats(before, before) == ("", 0, 0)


def test_diff_stats_handles_missing_final_newline_and_empty_files():
    diff, added, removed = diff_stats("a\nb", "a\nb\nc")
    assert "\\ No newline at end of file" in diff
    assert (added, removed) == (2, 1)  # like git: "b" lost its missing newline
    assert diff_stats("", "x\ny\n")[1:] == (2, 0)
    assert diff_stats("x\ny\n", "")[1:] == (0, 2)


def _git_numstat(tmp_path, before: str, after: str) -> tuple[int, int]:
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_bytes(before.encode())
    b.write_bytes(after.encode())
    out = subprocess.run(["git", "diff", "--no-index", "--numstat", "--", str(a), str(b)],
                         capture_output=True, text=True, check=False)
    assert out.returncode in (0, 1), out.stderr
    if not out.stdout.strip():
        return 0, 0
    added, removed, _ = out.stdout.split("\t", 2)
    return int(added), int(removed)


@pytest.mark.parametrize(
    "before, after",
    [
        (SKILL, SKILL.replace("Be polite.", "Be kind.") + "extra\n"),
        ("a\nb", "a\nb\nc"),
        ("x\n" * 30, "x\n" * 10 + "y\n" + "x\n" * 19),
        ("", "new\n"),
    ],
)
def test_diff_counts_agree_with_git(tmp_path, before, after):
    _, added, removed = diff_stats(before, after)
    assert (added, removed) == _git_numstat(tmp_path, before, after)


def test_report_diff_and_counts_are_consistent():
    r = apply(SKILL, Edit("replace", "Be polite.", "Be kind."), Edit("add", "Rules", "- New."),
              name="CLAUDE.md")
    patch = PatchSet(r.diff)
    assert r.diff.startswith("--- a/CLAUDE.md\n+++ b/CLAUDE.md\n")
    assert (r.added_lines, r.removed_lines) == (patch.added, patch.removed) == (2, 1)
    assert r.changed and r.before == SKILL


# --------------------------------------------------------------------------- line endings


def test_crlf_document_stays_crlf():
    crlf = SKILL.replace("\n", "\r\n")
    r = apply(crlf,
              Edit("insert_after", "Be polite.", "- Be brief.\n- Be clear."),  # LF content
              Edit("replace", "Reply in plain\ntext.", "Reply in\r\nMarkdown."),  # LF anchor, CRLF content
              Edit("add", "## New", "text"))
    assert all(x.applied for x in r.results), [x.reason for x in r.results]
    assert "\n" not in r.after.replace("\r\n", "")
    assert "\r" not in r.after.replace("\r\n", "")
    assert r.after.endswith("\r\n")
    assert "- Be polite.\r\n- Be brief.\r\n- Be clear.\r\n" in r.after
    assert "Reply in\r\nMarkdown." in r.after
    assert r.added_lines == 8 and r.removed_lines == 1  # 2 inserted, 2 for 1 replaced, 4 new section


def test_crlf_content_into_lf_document_becomes_lf():
    r = apply(SKILL, Edit("add", "Rules", "- x\r\n- y\r\n"))
    assert "\r" not in r.after and "- x\n- y\n" in r.after


def test_mixed_line_endings_normalised_only_when_something_changes():
    mixed = "# S\r\na\r\nb\nc\r\n"
    assert apply(mixed, Edit("delete", "nothing here")).after == mixed
    r = apply(mixed, Edit("add", None, "d"))
    assert r.after == "# S\r\na\r\nb\r\nc\r\n\r\nd\r\n"


def test_trailing_newline_convention_is_preserved():
    assert apply("# S\nx", Edit("add", None, "y")).after == "# S\nx\n\ny"
    assert apply("# S\nx\n", Edit("add", None, "y")).after == "# S\nx\n\ny\n"
    assert apply("# S\nx\r\n", Edit("delete", "x")).after == "# S\r\n"


# --------------------------------------------------------------------------- structure guards


def test_edit_leaving_a_code_fence_open_is_refused():
    r = apply(SKILL, Edit("add", "Rules", "Example:\n```python\nprint('hi')"),
              Edit("add", "Rules", "Example:\n```python\nprint('hi')\n```"))
    assert r.results[0].reason.startswith("would leave a code fence")
    assert r.results[1].applied
    assert r.after.count("```") == 2


def test_edit_leaving_an_html_comment_open_is_refused():
    r = apply(SKILL, Edit("replace", "Be polite.", "Be polite. <!-- todo"))
    assert only(r).reason.startswith("would leave an HTML comment")


def test_document_with_an_already_open_fence_can_still_be_edited():
    skill = "# S\nRule one.\n```\nunterminated\n"
    r = apply(skill, Edit("replace", "Rule one.", "Rule 1."))
    assert only(r).applied


def test_front_matter_after_a_byte_order_mark_is_protected():
    skill = "\ufeff---\nname: x\n---\n# S\n"
    assert protected_spans(skill) == [(0, len("\ufeff---\nname: x\n---\n"))]
    assert "front matter" in only(apply(skill, Edit("replace", "name: x", "name: y"))).reason


# --------------------------------------------------------------------------- minimal diffs


def _lcs(a, b):
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _rebuild(before_lines, diff):
    """Apply a unified diff (parsed by unidiff) to a list of lines."""
    out, pos = [], 0
    for hunk in PatchSet(diff)[0] if diff else []:
        start = hunk.source_start - 1 if hunk.source_length else hunk.source_start
        out.extend(before_lines[pos:start])
        pos = start
        for line in hunk:
            if line.line_type == "\\":
                continue
            value = line.value.rstrip("\n")
            if line.is_context or line.is_removed:
                assert before_lines[pos] == value
                pos += 1
            if line.is_context or line.is_added:
                out.append(value)
    out.extend(before_lines[pos:])
    return out


def test_diff_is_minimal_and_reconstructs_the_result_on_random_documents():
    import random

    rng = random.Random(7)
    for _ in range(150):
        a = [rng.choice("abc ") for _ in range(rng.randint(0, 25))]
        b = [rng.choice("abc ") for _ in range(rng.randint(0, 25))]
        before = "\n".join(a) + ("\n" if rng.random() < 0.8 else "")
        after = "\n".join(b) + ("\n" if rng.random() < 0.8 else "")
        diff, added, removed = diff_stats(before, after)
        la, lb = _diff_split(before), _diff_split(after)
        assert _rebuild(la, diff) == lb
        # minimal: every line (with its newline) outside a longest common subsequence, no more
        ka, kb = before.splitlines(keepends=True), after.splitlines(keepends=True)
        assert added + removed == len(ka) + len(kb) - 2 * _lcs(ka, kb)


def _diff_split(text):
    return text.split("\n")[:-1] if text.endswith("\n") else (text.split("\n") if text else [])


def test_large_rewrite_falls_back_to_difflib_and_still_counts_correctly(monkeypatch):
    import skillopt_action.diff as edits_module

    monkeypatch.setattr(edits_module, "_MYERS_MAX_D", 2)
    before = "".join(f"line {i}\n" for i in range(20))
    after = "".join(f"other {i}\n" for i in range(20))
    diff, added, removed = diff_stats(before, after)
    assert (added, removed) == (20, 20)
    assert _rebuild(_diff_split(before), diff) == _diff_split(after)


def test_random_diffs_agree_with_git(tmp_path):
    import random

    rng = random.Random(11)
    for _ in range(15):
        a = [rng.choice(["- rule a", "- rule b", "", "## H", "text"]) for _ in range(rng.randint(1, 30))]
        b = list(a)
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(b) + 1)
            if rng.random() < 0.5 and i < len(b):
                del b[i]
            else:
                b.insert(i, rng.choice(["- new", "", "text"]))
        before, after = "\n".join(a) + "\n", "\n".join(b) + "\n"
        assert diff_stats(before, after)[1:] == _git_numstat(tmp_path, before, after)
