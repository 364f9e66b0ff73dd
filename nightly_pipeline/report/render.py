"""Render the shortlist page: one self-contained HTML document (inline CSS and SVG, no scripts, no
fonts, nothing fetched when it is opened).

Jinja2 autoescapes every value: company names, rationales and contact details came from websites,
vendors and a model, and are text, never markup.
"""
from __future__ import annotations

import functools

import jinja2

from nightly_pipeline.report.view import Page

TEMPLATE = "shortlist.html.j2"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("nightly_pipeline.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(page: Page) -> str:
    return environment().get_template(TEMPLATE).render(page=page)
