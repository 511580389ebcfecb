"""YAML loading that remembers where every key and list item came from.

Mappings load as `Located` dicts and sequences as `LocatedList`s; both carry
`.file` and `.line` (1-based) for themselves and `.lines[key_or_index]` for
their children, so every config or task error can name file:line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


class Located(dict):
    file: str = ""
    line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class LocatedList(list):
    file: str = ""
    line: int = 0

    def __init__(self, *args):
        super().__init__(*args)
        self.lines: dict[int, int] = {}

    def line_of(self, index: int) -> int:
        return self.lines.get(index, self.line)


def kind_of(value: Any) -> str:
    """What a YAML value is, in the words of the config reference (never an internal type name such as
    LocatedList), for error messages."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "a value"


def plain(value: Any) -> Any:
    """A loaded YAML value as plain data (Located -> dict, LocatedList -> list), for messages."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _loader_for(file: str):
    class _Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        loader.flatten_mapping(node)
        out = Located()
        out.file, out.line = file, node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise ConfigError("a mapping key must be a plain value", file, key_node.start_mark.line + 1,
                                  "write `key: value`") from None
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", file, key_node.start_mark.line + 1,
                                  f"remove one of the two {key!r} entries")
            out[key] = loader.construct_object(value_node, deep=True)
            out.lines[key] = key_node.start_mark.line + 1
        return out

    def construct_sequence(loader, node, deep=False):
        out = LocatedList()
        out.file, out.line = file, node.start_mark.line + 1
        for i, child in enumerate(node.value):
            out.append(loader.construct_object(child, deep=True))
            out.lines[i] = child.start_mark.line + 1
        return out

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return _Loader


def loads(text: str, file: str = "<string>") -> Any:
    try:
        return yaml.load(text, Loader=_loader_for(file))  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc}", file, line,
                          "check the indentation and quoting on that line") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file, None, "check the file's syntax") from None


def load(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", str(path), None, "check the path, or run `skillopt init`") from None
    except UnicodeDecodeError:
        raise ConfigError("file is not UTF-8 text", str(path), None, "save it as UTF-8") from None
    return loads(text, str(path))
