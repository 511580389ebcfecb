"""Workspace check for the release tasks: run by the `workspace_command` scorer inside the agent's workspace.

    python3 checks/changelog.py NEW_VERSION OLD_VERSION

Exit 0 when CHANGELOG.md has the new release first, in Keep a Changelog form
(`## [X.Y.Z] - YYYY-MM-DD`, then `### Added` / `### Fixed` sections with bullets), and still
has the previous release below it. Otherwise exit 1 and say what is wrong (the message becomes
the scorer's feedback, which the optimizer reads).

It lives in the project, not in the fixture, so the agent cannot edit the check.
"""

import re
import sys
from pathlib import Path

new, old = sys.argv[1], sys.argv[2]
path = Path("CHANGELOG.md")
if not path.is_file():
    sys.exit("CHANGELOG.md is missing")
text = path.read_text(encoding="utf-8")
heads = re.findall(r"^## (.+)$", text, re.M)
problems = []
if not heads:
    problems.append("no `## ` release headings at all")
else:
    if not re.fullmatch(r"\[" + re.escape(new) + r"\] - \d{4}-\d{2}-\d{2}", heads[0]):
        problems.append(f"the first release heading is {heads[0]!r}, expected '[{new}] - YYYY-MM-DD'")
    if not any(h.startswith(f"[{old}]") for h in heads[1:]):
        problems.append(f"the previous release [{old}] is no longer below the new one")
    top = re.split(r"^## .*$", text, flags=re.M)[1]  # the new release's body, up to the next `## `
    for section in ("### Added", "### Fixed"):
        if section not in top:
            problems.append(f"the new release has no {section!r} section")
    if not re.search(r"^- \S", top, re.M):
        problems.append("the new release lists no `- ` bullet")
if problems:
    print("; ".join(problems))
    sys.exit(1)
print("changelog ok")
