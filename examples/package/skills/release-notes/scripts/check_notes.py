#!/usr/bin/env python3
"""Check release notes: a `## <version>` heading, then one `- Fixed:` / `- Added:` / `- Changed:` line per change."""

import re
import sys

text = open(sys.argv[1], encoding="utf-8").read() if len(sys.argv) > 1 else sys.stdin.read()
lines = [ln for ln in text.splitlines() if ln.strip()]
ok = bool(lines) and re.match(r"^## \d+\.\d+\.\d+$", lines[0]) is not None
ok = ok and all(re.match(r"^- (Fixed|Added|Changed): ", ln) for ln in lines[1:])
print("ok" if ok else "release notes do not follow the format")
sys.exit(0 if ok else 1)
