"""Run the evidence example end to end, offline: `python examples/evidence/run.py [OUT_DIR]`.

Starts the toy model server (toy_model.py) on 127.0.0.1, writes a config pointing at it into a scratch copy of
this directory, runs `skillopt optimize` through the public API, and writes report.md / report.json / best_skill.md
into OUT_DIR (default: examples/evidence/run/). The committed report.md next to this file is such a run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from toy_model import serve  # noqa: E402

from skillopt_action import api  # noqa: E402


def main(out: Path) -> int:
    server, base_url = serve()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp) / "evidence"
            shutil.copytree(HERE, project, ignore=shutil.ignore_patterns("run", ".skillopt", "__pycache__"))
            cfg = project / "skillopt.yml"
            cfg.write_text(cfg.read_text().replace("${BASE_URL}", base_url))
            os.environ.setdefault("TOY_KEY", "toy-key-not-secret")
            result = api.optimize(cfg, out=project / "out", log=lambda m: print(f"[skillopt] {m}", file=sys.stderr))
            out.mkdir(parents=True, exist_ok=True)
            result.write(out)
            print(f"improved: {result.improved}; report in {out / 'report.md'}")
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "run"))
