"""Jinja2 rendering of the prompts and Markdown outputs kept in `templates/`."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2
import jinja2.meta

from . import fmt


def templates_dir() -> Path:
    """templates/ ships inside the wheel as skillopt_action.templates; in a source checkout it is ../templates."""
    packaged = Path(__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.globals["fmt"] = fmt  # one way to print numbers, in every template
    return env


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)


@functools.lru_cache(maxsize=64)
def context_names(name: str) -> frozenset[str] | None:
    """The context variables template `name` reads, or None when it includes, imports or extends another template
    (whose names are not followed): a caller may then render it once for all values of the other variables."""
    env = environment()
    source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    ast = env.parse(source)
    if any(True for _ in jinja2.meta.find_referenced_templates(ast)):
        return None
    return frozenset(jinja2.meta.find_undeclared_variables(ast))
