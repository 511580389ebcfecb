"""The output boundary (redact.py): which values and shapes are masked, what is left alone, and the writers,
streams and runner commands that apply it."""

from __future__ import annotations

import json
import os
import sys

import pytest

from skillopt_action import redact
from skillopt_action.redact import MASK

GHP = "ghp_" + "A1b2C3d4E5" * 3 + "F6g7H8"
PAT = "github_pat_11ABCDEFG0" + "x1Y2z3" * 10
OPENAI = "sk-proj-" + "Zq8" * 16
ANTHROPIC = "sk-ant-api03-" + "Kp4_" * 20
AWS = "AKIAIOSFODNN7EXAMPL3"
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAA\n-----END OPENSSH PRIVATE KEY-----"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    for name in list(os.environ):
        if redact.SECRET_NAME.search(name) or name in redact.ALWAYS_SECRET:
            monkeypatch.delenv(name)
    monkeypatch.setenv("MY_SERVICE_API_KEY", "value-of-my-service-key-123")
    monkeypatch.setenv("DB_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # a "TOKEN" name with a short, harmless value
    monkeypatch.setenv("HF_TOKEN_PATH", "/root/.cache/huggingface/token")  # a location, not a secret


def test_known_values_from_secret_looking_variables_are_masked_and_nothing_else():
    text = "key value-of-my-service-key-123, pw hunter2hunter2, parallel false, path /root/.cache/huggingface/token"
    out = redact.redact(text)
    assert "value-of-my-service-key-123" not in out and "hunter2hunter2" not in out
    assert out == f"key {MASK}, pw {MASK}, parallel false, path /root/.cache/huggingface/token"
    assert redact.redact(out) == out, "masking is idempotent"


def test_names_the_config_registers_are_secret_whatever_they_are_called(monkeypatch):
    monkeypatch.setenv("LLM_CRED_FOR_TESTS_ONLY_XYZ", "abcdefgh12345678")  # no KEY/TOKEN/... in the name
    assert redact.redact("x abcdefgh12345678") == "x abcdefgh12345678"
    redact.register_names(["LLM_CRED_FOR_TESTS_ONLY_XYZ"])
    assert redact.redact("x abcdefgh12345678") == f"x {MASK}"


@pytest.mark.parametrize("secret", [GHP, PAT, OPENAI, ANTHROPIC, AWS, PEM, "gho_" + "9" * 36, "ghs_" + "a" * 36,
                                    "AIza" + "S" * 35, "xoxb-1234567890-abcdefghij",
                                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXZhbHVl"])
def test_secret_shapes_are_masked_even_when_the_value_is_unknown(secret):
    out = redact.redact(f"the model said: {secret} (done)")
    assert secret not in out and out == f"the model said: {MASK} (done)"
    assert redact.find_secrets(secret) and all(secret not in desc for _, desc in redact.find_secrets(secret))


def test_bearer_keeps_the_word_and_a_truncated_pem_block_is_masked_to_the_end():
    assert redact.redact("Authorization: Bearer abcDEF123456ghiJKL789") == f"Authorization: Bearer {MASK}"
    assert redact.redact("x -----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc") == f"x {MASK}"


@pytest.mark.parametrize("text", ["sk-learn-compatible-estimators-for-you", "task-1234567890abcdefghij", "ghp_short",
                                  "AKIA is a prefix", "Use a bearer token from the vault", "The capital is Paris."])
def test_ordinary_text_is_left_alone(text):
    assert redact.redact(text) == text


def test_redact_obj_walks_keys_and_values_and_keeps_other_types():
    obj = {"a": [GHP, 1, None, {"hunter2hunter2": True}], "b": (OPENAI,), "n": 2.5}
    assert redact.redact_obj(obj) == {"a": [MASK, 1, None, {MASK: True}], "b": [MASK], "n": 2.5}


def test_writers_are_atomic_and_masked(tmp_path):
    p = tmp_path / "sub" / "state.json"
    redact.write_json(p, {"answer": f"token {GHP}"})
    assert json.loads(p.read_text()) == {"answer": f"token {MASK}"}
    redact.write_text(tmp_path / "r.md", f"pw hunter2hunter2\n{PEM}\n")
    assert (tmp_path / "r.md").read_text() == f"pw {MASK}\n{MASK}\n"
    redact.append_line(tmp_path / "t.jsonl", json.dumps({"x": ANTHROPIC}))
    redact.append_line(tmp_path / "t.jsonl", "second")
    assert (tmp_path / "t.jsonl").read_text().splitlines() == [json.dumps({"x": MASK}), "second"]
    assert sorted(x.name for x in tmp_path.rglob("*")) == ["r.md", "state.json", "sub", "t.jsonl"], "no temp files left"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    p = tmp_path / "state.json"
    redact.write_json(p, {"v": 1})
    with pytest.raises(TypeError):
        redact.write_text(p, None)  # type: ignore[arg-type]
    assert json.loads(p.read_text()) == {"v": 1} and [x.name for x in tmp_path.iterdir()] == ["state.json"]


def test_guard_streams_masks_prints_and_tracebacks(capsys):
    import traceback

    with redact.guard_streams():
        print(f"key: {GHP}")
        try:
            raise RuntimeError("provider said: Incorrect API key value-of-my-service-key-123")
        except RuntimeError:
            traceback.print_exc()
    out, err = capsys.readouterr()
    assert GHP not in out and MASK in out
    assert "value-of-my-service-key-123" not in err and "Incorrect API key [REDACTED]" in err
    assert not isinstance(sys.stdout, redact.RedactingStream), "the streams are restored"


def test_add_mask_commands_cover_every_known_value_line_by_line(monkeypatch, capsys):
    monkeypatch.setenv("DEPLOY_PRIVATE_KEY", "line-one-of-the-key\nline-two-of-the-key\nab")
    lines = redact.add_mask_commands()
    assert "::add-mask::value-of-my-service-key-123" in lines and "::add-mask::hunter2hunter2" in lines
    assert "::add-mask::line-one-of-the-key" in lines and "::add-mask::line-two-of-the-key" in lines
    assert "::add-mask::ab" not in lines and not any("false" in x for x in lines)
    with redact.guard_streams():  # the runner must read the real values, so the commands bypass the mask
        n = redact.emit_add_masks()
    out = capsys.readouterr().out
    assert n == len(lines) and "::add-mask::hunter2hunter2" in out


def test_json_files_stay_valid_whatever_a_secret_looks_like(tmp_path, monkeypatch):
    monkeypatch.setenv("ODD_SECRET", 'b": "after')  # a value that matches JSON syntax, not any string
    data = {"a": "x -----BEGIN RSA PRIVATE KEY-----\nMIIE", "b": "after"}
    redact.write_json(tmp_path / "s.json", data)
    redact.append_json(tmp_path / "t.jsonl", data)
    expected = {"a": f"x {MASK}", "b": "after"}
    assert json.loads((tmp_path / "s.json").read_text()) == expected
    assert json.loads((tmp_path / "t.jsonl").read_text()) == expected
