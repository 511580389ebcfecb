"""The `llm_rubric` scorer: a judge model grades the answer against a rubric, seeing it as untrusted data."""

from __future__ import annotations

import json
import re

from ..errors import ConfigError
from ..render import render
from ..text import clip, quote
from .base import ScorerContext, ScoreResult, check_keys, output_of, register_scorer
from .structured import extract_json

JUDGE_TEMPLATE = "judge.md.j2"
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
OPEN_TAG, CLOSE_TAG = "<untrusted_output>", "</untrusted_output>"
_TAGS = re.compile(r"<\s*(/?)\s*(untrusted_output|task|reference)\s*>", re.IGNORECASE)
JUDGE_MAX_CHARS = 24000


def neutralise(text: str) -> str:
    """Defang anything that looks like one of the judge prompt's delimiters."""
    return _TAGS.sub(lambda m: f"[{m.group(1)}{m.group(2)} (quoted)]", text)


def _shorten(text: str, limit: int = JUDGE_MAX_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters omitted ...]\n{text[-half:]}"


def _validate_rubric(spec, file, line):
    check_keys(spec, ("rubric", "pass_score"), file, line)
    rubric = spec.get("rubric")
    if not isinstance(rubric, str) or not rubric.strip():
        raise ConfigError("scorer 'llm_rubric' needs `rubric`: what a good answer does", file, line,
                          "write e.g. `rubric: \"Names the capital and cites one source.\"`")
    if "pass_score" in spec:
        ps = spec["pass_score"]
        if isinstance(ps, bool) or not isinstance(ps, (int, float)) or not 0 <= ps <= 1:
            raise ConfigError(f"scorer 'llm_rubric': `pass_score` must be a number in [0, 1], got {ps!r}", file, line,
                              "write e.g. `pass_score: 0.7`")
        spec["pass_score"] = float(ps)
    return spec


def parse_judge(text: str) -> tuple[float, str] | None:
    ok, value, _ = extract_json(text or "")
    if not ok or not isinstance(value, dict):
        return None
    score = value.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        return None
    reason = value.get("reason", "")
    return float(score), reason if isinstance(reason, str) else json.dumps(reason)


class RubricScorer:
    def __init__(self, spec: dict, ctx: ScorerContext):
        if ctx.judge is None:
            raise ConfigError("llm_rubric needs a `judge:` model in the config", None, None,
                              "add `judge: {provider: openai, model: ...}` to .github/skillopt.yml")
        self.spec, self.judge = spec, ctx.judge

    def prompts(self, task, completion) -> tuple[str, list[dict]]:
        ref = task.reference
        reference = None if ref is None else ref if isinstance(ref, str) else json.dumps(ref, ensure_ascii=False)
        common = dict(rubric=self.spec["rubric"], task_text=neutralise(_shorten(task.prompt_text())),
                      reference=None if reference is None else neutralise(_shorten(reference)),
                      output=neutralise(_shorten(output_of(completion))), open_tag=OPEN_TAG, close_tag=CLOSE_TAG)
        system = render(JUDGE_TEMPLATE, part="system", **common)
        user = render(JUDGE_TEMPLATE, part="user", **common)
        return system, [{"role": "user", "content": user}]

    def score(self, task, completion) -> ScoreResult:
        system, messages = self.prompts(task, completion)
        reply = self.judge.complete(system, messages, seed=0, json_schema=JUDGE_SCHEMA)
        parsed = parse_judge(reply.text)
        if parsed is None:
            retry = messages + [
                {"role": "assistant", "content": reply.text or ""},
                {
                    "role": "user",
                    "content": "That was not the required JSON. Reply with exactly one JSON object "
                    '{"score": <number from 0 to 1>, "reason": "<short reason>"} and nothing else.',
                },
            ]
            reply = self.judge.complete(system, retry, seed=0, json_schema=JUDGE_SCHEMA)
            parsed = parse_judge(reply.text)
        if parsed is None:
            return ScoreResult(0.0, clip(f"judge answer unparseable: {quote(reply.text or '', 80)}"))
        judged, reason = parsed
        fb = f"judge {judged:.2f}: {quote(reason, 220)}"
        if "pass_score" in self.spec:
            verdict = "pass" if judged >= self.spec["pass_score"] else "fail"
            return ScoreResult(float(judged >= self.spec["pass_score"]),
                               clip(f"{verdict} (judge {judged:.2f} vs pass_score {self.spec['pass_score']:g}): "
                                     f"{quote(reason, 200)}"))
        return ScoreResult(judged, clip(fb))


register_scorer("llm_rubric", validate=_validate_rubric, build=lambda spec, ctx: RubricScorer(spec, ctx))
