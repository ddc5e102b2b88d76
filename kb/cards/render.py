"""Cards rendered with Jinja2 templates: text (kb's card format), Markdown, HTML and JSON.

The packaged templates are in ``kb/cards/templates``; ``--template FILE`` renders with a
curator's own template and the same context (documented in the README): ``card`` (the
CardDoc), ``study`` (title, journal, year, type, doi, url, evidence status …), ``notices``,
``is_draft``, ``status``, and helpers ``paragraphs``, ``bullet``, ``sections``,
``technical_sections`` (those with content), ``all_technical_sections``, ``details``,
``detail_fields``. HTML templates (``.html``/``.htm``/``.j2`` ending in
``.html.j2``) are autoescaped.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, PackageLoader, StrictUndefined, Template, select_autoescape
from jinja2 import TemplateError

from kb.cards.data import CardView
from kb.cards.markup import safe_html
from kb.cards.model import SECTIONS, STUDY_DETAILS_LABELS, TECHNICAL_SECTIONS
from kb.cards.textformat import bullet_text, to_markdown_text
from kb.errors import InputError

FORMATS = ("text", "md", "html", "json")
_TEMPLATES = {"text": "card.txt.j2", "md": "card.md.j2", "html": "card.html.j2"}


def paragraphs(value: str | None) -> list[str]:
    return [p for p in (value or "").split("\n\n") if p.strip()]


def _environment(loader: Any, autoescape: Any) -> Environment:
    env = Environment(loader=loader, autoescape=autoescape, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True, undefined=StrictUndefined)
    env.filters["md"] = to_markdown_text
    return env


@cache
def environment() -> Environment:
    env = _environment(PackageLoader("kb.cards", "templates"),
                       select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False))
    env.auto_reload = False  # the packaged templates do not change while kb runs: no stat per card
    return env


def context(view: CardView, *, relative_root: str = "") -> dict[str, Any]:
    doc = view.doc
    return {
        "card": doc,
        "study": view.study,
        "notices": view.notices,
        "is_draft": view.is_draft,
        "status": view.status,
        "generated": view.generated,
        "sections": SECTIONS,
        "technical_sections": [s for s in TECHNICAL_SECTIONS if s.has_content(doc)],
        "all_technical_sections": TECHNICAL_SECTIONS,
        "detail_fields": list(STUDY_DETAILS_LABELS.items()),
        "details": [(label, getattr(doc, name)) for label, name in STUDY_DETAILS_LABELS.items() if getattr(doc, name)],
        "paragraphs": paragraphs,
        "bullet": bullet_text,
        "title_html": safe_html(view.study.get("title_markup"), view.study["title"]),
        "extracted": set(doc.extracted_fields),
        "root": relative_root,
    }


def render(view: CardView, fmt: str = "text", *, template: Path | None = None, relative_root: str = "") -> str:
    """The card in ``fmt``; with ``template``, a curator's own Jinja2 template instead."""
    if template is not None:
        return _render_template(_user_template(template), view, relative_root)
    if fmt == "json":
        return json.dumps(card_json(view), ensure_ascii=False, indent=2) + "\n"
    if fmt not in _TEMPLATES:
        raise InputError(f"unknown card format {fmt!r}: use one of {', '.join(FORMATS)}")
    return _render_template(environment().get_template(_TEMPLATES[fmt]), view, relative_root)


def render_edit_template(view: CardView) -> str:
    """kb curate edit's text: every heading, with '# ' comment lines (card.edit.j2)."""
    view.notices = []
    return _render_template(environment().get_template("card.edit.j2"), view, "")


def _render_template(tmpl: Template, view: CardView, relative_root: str) -> str:
    try:
        return tmpl.render(context(view, relative_root=relative_root))
    except TemplateError as exc:
        raise InputError(f"the template {tmpl.name or ''} failed: {exc}") from exc


def _user_template(path: Path) -> Template:
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the template {path}: {exc.strerror}") from exc
    html = path.name.endswith((".html", ".htm", ".html.j2"))
    env = _environment(FileSystemLoader(str(path.parent)), html)
    try:
        tmpl = env.from_string(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(f"the template {path}{f', line {line}' if line else ''} is not valid Jinja2: {exc}") from exc
    tmpl.name = str(path)
    return tmpl


def card_json(view: CardView) -> dict[str, Any]:
    """The card's data: what the curator wrote (with where each part came from) and the study."""
    doc = view.doc.to_json()
    study = {k: v for k, v in view.study.items() if k not in ("title_markup", "content_hash")}
    return {
        "pmid": view.study["pmid"],
        "is_draft": view.is_draft,
        "generated": view.generated,
        "status": view.status,
        "notices": [{"kind": n.kind, "title": n.title, "text": n.text} for n in view.notices],
        "card": doc,
        "study": study,
        **({"curation": view.card_meta} if view.card_meta else {}),
    }
