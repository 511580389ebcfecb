#!/usr/bin/env python3
"""A tiny stand-in for a CLI coding agent, for what real agents cannot do on demand.

It reads its prompt (stdin by default; `--prompt-arg TEXT`, or `--prompt-file PATH`) and obeys
directive lines in it, in order:

    WRITE <path> :: <content>     write a file (relative to the working directory, or any path)
    APPEND <path> :: <content>    append a line
    PRINT <text>                  print a line on stdout
    STDERR <text>                 print a line on stderr
    SLEEP <seconds>               sleep
    HANG                          start a child that sleeps for an hour, then sleep for an hour
                                  (the child's pid goes to $FAKE_AGENT_PID_FILE when set)
    EXIT <code>                   exit with that code now
    JSON <json>                   print one JSON line (for `output: json:<field>`)

Content and text may use {SKILL}, replaced by "skill-seen" when the installed skill file
($SKILLOPT_SKILL_PATH) contains the word "uppercase" (case-insensitive) and "skill-absent"
otherwise, and {UPPER:text}, replaced by TEXT when the skill says "uppercase", else text as is.
So a task's score can depend on what the skill says, without a model.
Lines without a directive are ignored. Finally it prints "fake agent done" unless it printed
anything else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path


def skill_says_uppercase() -> bool:
    p = os.environ.get("SKILLOPT_SKILL_PATH")
    if not p or not Path(p).is_file():
        return False
    return "uppercase" in Path(p).read_text(encoding="utf-8").lower()


def expand(text: str) -> str:
    up = skill_says_uppercase()
    text = text.replace("{SKILL}", "skill-seen" if up else "skill-absent")
    return re.sub(r"\{UPPER:([^}]*)\}", lambda m: m.group(1).upper() if up else m.group(1), text)


def read_prompt(argv: list[str]) -> str:
    if "--prompt-arg" in argv:
        return argv[argv.index("--prompt-arg") + 1]
    if "--prompt-file" in argv:
        return Path(argv[argv.index("--prompt-file") + 1]).read_text(encoding="utf-8")
    return sys.stdin.read()


def main(argv: list[str]) -> int:
    prompt = read_prompt(argv)
    printed = False
    for line in prompt.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word in ("WRITE", "APPEND"):
            path, _, content = rest.partition(" :: ")
            p = Path(path.strip())
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "a" if word == "APPEND" else "w", encoding="utf-8") as fh:
                fh.write(expand(content) + "\n")
        elif word == "PRINT":
            print(expand(rest), flush=True)
            printed = True
        elif word == "STDERR":
            print(expand(rest), file=sys.stderr, flush=True)
        elif word == "SLEEP":
            time.sleep(float(rest))
        elif word == "HANG":
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
            pid_file = os.environ.get("FAKE_AGENT_PID_FILE")
            if pid_file:
                Path(pid_file).write_text(str(child.pid))
            print("hanging", flush=True)
            time.sleep(3600)
        elif word == "EXIT":
            return int(rest)
        elif word == "JSON":
            print(json.dumps(json.loads(expand(rest))), flush=True)
            printed = True
    if not printed:
        print("fake agent done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
