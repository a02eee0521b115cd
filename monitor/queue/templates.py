"""Suggested replies from templates in a config folder.

Each ``*.toml`` file in ``[queue] templates_dir`` (default: ``replies/`` next to this module) holds ``[[templates]]``
tables. A template may be limited to topics, languages, sources (names or
types) and reasons; the most specific templates that fit an item are
candidates, and the least recently sent of them is suggested, so the same
words are not posted twice in a row. A person always edits and sends.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from monitor.config import ConfigError
from monitor.store import team as team_store

PLACEHOLDERS = ("author", "location", "business", "contact", "source")
MISSING_CONTACT = "[contact]"
_PLACEHOLDER = re.compile(r"\{(\w*)\}")
TEMPLATE_KEYS = ("id", "text", "topics", "flags", "languages", "sources", "reasons")
REASONS = ("complaint", "question")


@dataclass(frozen=True)
class ReplyTemplate:
    id: str
    text: str
    topics: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    origin: str = ""
    order: int = 0

    def fits(self, item: dict[str, Any]) -> bool:
        """Every non-empty constraint meets the item; an item of unknown language counts as English."""
        if self.languages and item_language(item) not in self.languages:
            return False
        return all(
            not wanted or bool(set(wanted) & have)
            for wanted, have in (
                (self.topics, set(item.get("topics") or ())),
                (self.flags, set(item.get("flags") or ())),
                (self.sources, {item.get("source"), item.get("source_type")}),
                (self.reasons, {item.get("reason")}),
            )
        )

    def specificity(self) -> int:
        # An urgency flag (a safety or legal matter) decides the words most, then the topic, the platform,
        # the language.
        return (
            16 * bool(self.flags) + 8 * bool(self.topics) + 4 * bool(self.sources) + 2 * bool(self.languages)
            + bool(self.reasons)
        )  # fmt: skip


@dataclass
class Suggestion:
    template_id: str
    text: str


def _str_tuple(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, f'expected a list of strings like ["wait_time"], got {value!r}')
    return tuple(value)


def parse_templates(text: str, origin: str) -> list[ReplyTemplate]:
    """Templates from one TOML file's text; errors name the file and the template."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(origin, f"invalid TOML: {exc}") from None
    unknown = set(raw) - {"templates"}
    if unknown:
        raise ConfigError(f"{origin}: {sorted(unknown)[0]}", "unknown key (a template file holds [[templates]] tables)")
    tables = raw.get("templates", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{origin}: templates", "expected [[templates]] tables")
    out = []
    for i, table in enumerate(tables):
        key = f"{origin}: templates[{i}]"
        for name in table:
            if name not in TEMPLATE_KEYS:
                raise ConfigError(f"{key}.{name}", f"unknown key (allowed: {', '.join(TEMPLATE_KEYS)})")
        template_id, body = table.get("id"), table.get("text")
        if not isinstance(template_id, str) or not template_id.strip():
            raise ConfigError(f"{key}.id", "required: a unique name for the template")
        if not isinstance(body, str) or not body.strip():
            raise ConfigError(f"{key}.text", "required: the reply text")
        for name in _PLACEHOLDER.findall(body):
            if name not in PLACEHOLDERS:
                raise ConfigError(f"{key}.text", f"unknown placeholder {{{name}}} (allowed: {', '.join(PLACEHOLDERS)})")
        reasons = _str_tuple(f"{key}.reasons", table.get("reasons", []))
        for reason in reasons:
            if reason not in REASONS:
                raise ConfigError(f"{key}.reasons", f"expected complaint or question, got {reason!r}")
        out.append(
            ReplyTemplate(
                id=template_id.strip(),
                text=body.strip(),
                topics=_str_tuple(f"{key}.topics", table.get("topics", [])),
                flags=_str_tuple(f"{key}.flags", table.get("flags", [])),
                languages=_str_tuple(f"{key}.languages", table.get("languages", [])),
                sources=_str_tuple(f"{key}.sources", table.get("sources", [])),
                reasons=reasons,
                origin=origin,
                order=i,
            )
        )
    return out


BUNDLED = Path(__file__).parent / "replies"


def load_templates(folder: Path | None) -> list[ReplyTemplate]:
    """Every template in ``folder`` (sorted by file name); ``None`` means the bundled English set."""
    folder = folder or BUNDLED
    templates: list[ReplyTemplate] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.toml")):
        for template in parse_templates(path.read_text(encoding="utf-8"), path.name):
            if template.id in seen:
                raise ConfigError(f"{path.name}: {template.id}", f"duplicate template id (also in {seen[template.id]})")
            seen[template.id] = path.name
            templates.append(template)
    return templates


DEFAULT_LANGUAGE = "en"


def item_language(item: dict[str, Any]) -> str:
    """The item's language as templates name it (en-US → en); unknown → English."""
    return (item.get("lang") or DEFAULT_LANGUAGE).split("-")[0].lower() or DEFAULT_LANGUAGE


def candidates(templates: list[ReplyTemplate], item: dict[str, Any]) -> list[ReplyTemplate]:
    """The most specific templates that fit the item, in file order. A language with no templates of its own
    gets the English ones (a person translates) rather than nothing."""
    fitting = [t for t in templates if t.fits(item)]
    if not fitting and item_language(item) != DEFAULT_LANGUAGE:
        fitting = [t for t in templates if t.fits({**item, "lang": DEFAULT_LANGUAGE})]
    if not fitting:
        return []
    best = max(t.specificity() for t in fitting)
    return [t for t in fitting if t.specificity() == best]


def last_used(db: sqlite_utils.Database, template_ids: list[str]) -> dict[str, int]:
    """Template id → the id of the latest reply sent from it (reply ids grow; timestamps can tie)."""
    return team_store.template_last_used(db, template_ids)


def choose_template(templates: list[ReplyTemplate], item: dict[str, Any], used: dict[str, int]) -> ReplyTemplate | None:
    """Least recently sent first; among never-sent ones the item id spreads suggestions across items."""
    return _least_recent(candidates(templates, item), item, used)


def _least_recent(group: list[ReplyTemplate], item: dict[str, Any], used: dict[str, int]) -> ReplyTemplate | None:
    if not group:
        return None
    n = len(group)
    offset = int(item.get("id") or 0)
    return min(group, key=lambda t: (used.get(t.id, 0), (group.index(t) - offset) % n))


def render(template: ReplyTemplate, values: dict[str, str]) -> str:
    """Fill placeholders. Values are plain text: the inbox escapes them, and they are never re-parsed."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template.text)


# Words for a missing author, location or business, in the reply's language ("Hi there", "您好，顾客").
FALLBACK_WORDS = {
    "en": {"author": "there", "location": "our store", "business": "us"},
    "zh": {"author": "顾客", "location": "门店", "business": "我们"},
    "es": {"author": "cliente", "location": "nuestra tienda", "business": "nosotros"},
}


def placeholder_values(item: dict[str, Any], location_names: dict[str, str], contacts: dict[str, str],
                       default_contact: str, brand: str = "") -> dict[str, str]:  # fmt: skip
    """Values for the placeholders; ``item["location"]`` may be the one the shift stage inferred."""
    author = (item.get("author") or "").strip()
    location = item.get("location") or ""
    business = item.get("brand") or brand or location_names.get(location, "")
    fallback = FALLBACK_WORDS.get(item_language(item), FALLBACK_WORDS[DEFAULT_LANGUAGE])
    return {
        "author": author or fallback["author"],
        # With no location, the brand reads well in "the team at {location}".
        "location": location_names.get(location, location) or business or fallback["location"],
        "business": business or fallback["business"],
        # A visible gap beats a broken sentence: the person fills it in (the page says how to set it).
        "contact": contacts.get(location) or default_contact or MISSING_CONTACT,
        "source": item.get("source") or "",
    }


def follows_template(sent: str, suggested: str) -> bool:
    """Whether a sent reply is still mostly the suggested words (so rotation counts it as that template)."""
    return difflib.SequenceMatcher(None, sent.split(), suggested.split()).ratio() >= 0.5


def suggest_reply(
    db: sqlite_utils.Database,
    templates: list[ReplyTemplate],
    item: dict[str, Any],
    values: dict[str, str],
) -> Suggestion | None:
    """The suggested reply for a queue item (``item`` as from ``item_detail``, topics decoded)."""
    group = candidates(templates, item)
    chosen = _least_recent(group, item, last_used(db, [t.id for t in group]))
    if chosen is None:
        return None
    return Suggestion(template_id=chosen.id, text=render(chosen, values))
