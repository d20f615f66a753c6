"""Jinja2, autoescaped everywhere: every template renders hostile text (prompts, diffs,
model output) and no template marks anything safe."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from bot.doors.web.views import money, seconds

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name ends in
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["seconds"] = seconds
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
