"""The loopback side of bench_search: a simulated target and a scripted optimizer on one model server.

`Bench` runs tests/model_server.py (OpenAI wire format, 127.0.0.1) and dispatches each request by its model name,
`target-<run>`, `optim-<run>` (our reflection prompt) or `gepa-<run>` (GEPA's), to the `RunSim` of that run:

- target: the task's code word with the success probability the world gives the rules in the system prompt
  (bench/sim.py), else "I do not know."; the n-th identical request (same rules, same task) of a run gets the
  n-th draw of a keyed stream, so the methods of a seed see common random numbers;
- optimizer: the next rule of the seed's shared stream that is not already in the skill it is shown (the next
  `Setup.rules_per_call` rules, 1 by default), as our edit JSON (an `add` under "## Rules" per rule) or, for GEPA,
  as "current instructions + the rules" in a ``` block (one candidate holding them all, as a rewrite would).

Calls are counted per run at the server.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import model_server
from model_server import ModelServer, Text
from sim import Cursor, Rule, Stream, World, rule_ids, uniform

KEY_ENV = "SKILLOPT_BENCH_KEY"
SEED_SKILL = """# Code words

Every task asks for its code word. Answer with the code word only.

## Rules

- Read the task before answering.
"""
WRONG = "I do not know."
WINDOW = 0.06  # seconds of quiet that close a batch of concurrent reflection calls (see RunSim.optimizer_rules)


@dataclass
class Setup:
    n_train: int = 24
    n_val: int = 40
    n_test: int = 200
    p0: float = 0.15
    harm: float = 0.4
    repeat: float = 0.25
    epochs: int = 2
    batch_size: int = 8
    minibatch_size: int = 4
    samples: int = 3
    concurrency: int = 4
    rules_per_call: int = 1  # rules the scripted optimizer returns per call (a real LLM fills its edit budget)

    @property
    def n(self) -> int:
        return self.n_train + self.n_val + self.n_test

    def split(self, name: str) -> range:
        a, b = self.n_train, self.n_train + self.n_val
        return {"train": range(0, a), "val": range(a, b), "test": range(b, self.n)}[name]


def task_id(i: int) -> str:
    return f"T{i:03d}"


def reference(i: int) -> str:
    return f"code-{i:03d}"


def task_input(i: int) -> str:
    return f"Task {task_id(i)}: reply with this task's code word."


TASK_RE = re.compile(r"Task T(\d+):")
SKILL_BLOCK_RE = re.compile(r"<skill>\n(.*?)\n</skill>", re.S)
GEPA_INSTRUCTIONS_RE = re.compile(r"instructions to perform a task for me:\n```\n(.*?)\n```\n", re.S)


class RunSim:
    """One method's run on one seed: the world, its cursor in the shared stream, and its calls."""

    def __init__(self, world_seed: str, world: World, stream: Stream, rules_per_call: int = 1):
        self.rules_per_call = rules_per_call
        self.world_seed = world_seed
        self.world = world
        self.stream = stream
        self.cursor = Cursor(stream)
        self.lock = threading.Condition()
        self.target_calls = 0
        self.optimizer_calls = 0
        self.seen: dict[tuple[str, int], int] = {}
        self.probs: dict[frozenset[int], list[float]] = {}
        self.pending: list[dict] = []
        self.last_arrival = 0.0

    def rules(self, text: str) -> list[Rule]:
        return [self.stream.rule(i) for i in sorted(rule_ids(text))]

    def answer_target(self, system: str, user: str) -> str:
        m = TASK_RE.search(user)
        if not m:
            raise ValueError(f"target request without a task id: {user[:80]!r}")
        i = int(m.group(1))
        ids = frozenset(rule_ids(system))
        skill_key = ",".join(map(str, sorted(ids)))
        with self.lock:
            self.target_calls += 1
            occurrence = self.seen.get((skill_key, i), 0)
            self.seen[(skill_key, i)] = occurrence + 1
            if ids not in self.probs:
                self.probs[ids] = self.world.probabilities(self.stream.rule(r) for r in ids)
            p = self.probs[ids][i]
        # keyed by the rule set, not the text: the same rules in any wording or order draw the same outcomes
        return reference(i) if uniform(self.world_seed, skill_key, i, occurrence) < p else WRONG

    def optimizer_rules(self, sort_key: str, present: set[int], batch: bool) -> list[Rule]:
        """The next `rules_per_call` stream rules not in `present`. With `batch`, concurrent calls (our loop
        reflects on a step's minibatches in parallel) are collected until WINDOW s pass without a new one, then
        served in the order of their prompts, so which call gets which rules does not depend on thread timing."""
        with self.lock:
            self.optimizer_calls += 1
            if not batch:
                return self._take(present)
            slot: dict[str, Any] = {"key": sort_key, "present": present, "rules": None}
            self.pending.append(slot)
            self.last_arrival = time.monotonic()
            self.lock.notify_all()
            while slot["rules"] is None:
                quiet = time.monotonic() - self.last_arrival
                if quiet >= WINDOW:
                    for s in sorted(self.pending, key=lambda s: s["key"]):
                        s["rules"] = self._take(s["present"])
                    self.pending = []
                    self.lock.notify_all()
                else:
                    self.lock.wait(WINDOW - quiet)
            return slot["rules"]

    def _take(self, present: set[int]) -> list[Rule]:
        rules: list[Rule] = []
        for _ in range(self.rules_per_call):
            rules.append(self.cursor.next_rule(present | {r.id for r in rules}))
        return rules


class Bench:
    """The loopback server and the runs it serves (dispatched by model name: target-/optim-/gepa-<run>)."""

    def __init__(self):
        self.runs: dict[str, RunSim] = {}
        # http.server leaves Nagle's algorithm on: each answer then waits ~40 ms for the client's delayed ACK.
        # Off for the bench (a run makes ~1,000 calls); the replies are the same bytes.
        model_server._Handler.disable_nagle_algorithm = True
        self.server = ModelServer(responder=self.respond)
        self.errors: list[str] = []

    def __enter__(self) -> Bench:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.close()

    def respond(self, req) -> Text:
        role, _, run = (req.model or "").partition("-")
        sim = self.runs[run]
        if role == "target":
            return Text(sim.answer_target(req.system, req.last_user_text))
        if role == "optim":
            m = SKILL_BLOCK_RE.search(req.last_user_text)
            if not m:
                raise ValueError("our reflection prompt has no <skill> block: bench_search must learn its new shape")
            rules = sim.optimizer_rules(req.last_user_text, rule_ids(m.group(1)), batch=True)
            edits = [{"op": "add", "anchor": "## Rules", "content": r.text, "rationale": "scripted proposal"}
                     for r in rules]
            return Text(json.dumps({"analysis": "scripted optimizer: the next rules of the stream", "edits": edits}))
        if role == "gepa":
            m = GEPA_INSTRUCTIONS_RE.search(req.last_user_text)
            if not m:
                raise ValueError("GEPA's reflection prompt has no instructions block: check its template")
            current = m.group(1)
            rules = sim.optimizer_rules("", rule_ids(current), batch=False)
            return Text("```\n" + "\n".join([current.rstrip(), *(r.text for r in rules)]) + "\n```")
        raise ValueError(f"unknown model {req.model!r}")

    def register(self, run: str, sim: RunSim) -> None:
        self.runs[run] = sim

    def release(self, run: str) -> None:
        self.runs.pop(run, None)
        self.server.requests.clear()  # the recorder keeps every request; a bench run makes ~10^5
