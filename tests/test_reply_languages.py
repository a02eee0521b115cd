"""Chinese and Spanish reply templates: the bundled sets mirror en.toml, and a zh complaint gets Chinese words."""

from __future__ import annotations

import json
import re

from monitor.config import QueueConfig
from monitor.queue.items import refresh_queue
from monitor.queue.listing import item_detail
from monitor.queue.templates import PLACEHOLDERS, candidates, load_templates, placeholder_values, suggest_reply

from .helpers import add_classified

_HAN = re.compile(r"[\u4e00-\u9fff]")


def _by_language(templates, lang):
    return {t.id: t for t in templates if t.languages == (lang,)}


def test_zh_and_es_mirror_every_english_template():
    templates = load_templates(None)
    english = _by_language(templates, "en")
    for lang in ("zh", "es"):
        mine = _by_language(templates, lang)
        assert set(mine) == {f"{i}-{lang}" for i in english}
        for template_id, template in english.items():
            twin = mine[f"{template_id}-{lang}"]
            assert (twin.topics, twin.flags, twin.sources, twin.reasons) == (
                template.topics,
                template.flags,
                template.sources,
                template.reasons,
            )
            # The same facts reach the customer: every placeholder the English words use.
            assert set(re.findall(r"\{(\w+)\}", twin.text)) == set(re.findall(r"\{(\w+)\}", template.text))
            assert set(re.findall(r"\{(\w+)\}", twin.text)) <= set(PLACEHOLDERS)
    assert all(_HAN.search(t.text) for t in _by_language(templates, "zh").values())
    assert not any(_HAN.search(t.text) for t in _by_language(templates, "es").values())


def _item(lang: str, topics: list[str]) -> dict:
    return {"id": 1, "reason": "complaint", "topics": topics, "flags": [], "lang": lang, "source": "reviews",
            "source_type": "schema_org"}  # fmt: skip


def test_each_language_gets_its_own_words():
    templates = load_templates(None)
    for lang in ("en", "zh", "es"):
        for topics in (["wait_time"], ["staff_attitude"], []):
            found = candidates(templates, _item(lang, topics))
            assert found and all(t.languages == (lang,) for t in found), (lang, topics)
    # A regional tag still picks the language's templates.
    assert {t.languages for t in candidates(templates, _item("es-MX", ["wait_time"]))} == {("es",)}


def test_chinese_wait_complaint_is_queued_with_a_chinese_suggestion(fresh_db):
    text = "排了四十分钟，店员态度也很差"
    mention_id = add_classified(fresh_db, "reviews", "zh-1", text, "complaint", topics=["wait_time", "staff_attitude"])
    fresh_db["classifications"].update(mention_id, {"lang": "zh"})
    refresh_queue(fresh_db, QueueConfig())
    [row] = list(fresh_db.query("select id from queue_items"))
    detail = item_detail(fresh_db, row["id"])
    assert detail["lang"] == "zh"
    facts = {**detail, "topics": json.loads(detail["topics"]), "flags": json.loads(detail["urgency"] or "[]")}
    values = placeholder_values(facts, {"downtown": "市中心店"}, {}, "400-123-4567")
    values["author"] = "小王"
    suggestion = suggest_reply(fresh_db, load_templates(None), facts, values)
    assert suggestion is not None and suggestion.template_id.endswith("-zh")
    assert suggestion.template_id.startswith(("wait-time-", "staff-attitude-"))
    assert _HAN.search(suggestion.text) and "400-123-4567" in suggestion.text and "{" not in suggestion.text


def test_a_language_without_templates_gets_english_and_no_language_counts_as_english():
    templates = load_templates(None)
    german = candidates(templates, {"lang": "de", "topics": ["wait_time"], "reason": "complaint"})
    assert german and all(t.languages == ("en",) for t in german)
    unknown = candidates(templates, {"lang": None, "topics": ["wait_time"], "reason": "complaint"})
    assert unknown and all(t.languages == ("en",) for t in unknown)


def test_missing_placeholders_are_filled_in_the_reply_language():
    zh = placeholder_values({"lang": "zh", "author": "", "location": ""}, {}, {}, "care@x.example")
    assert (zh["author"], zh["location"], zh["business"]) == ("顾客", "门店", "我们")
    en = placeholder_values({"lang": "en", "author": "", "location": ""}, {}, {}, "care@x.example")
    assert en["author"] == "there"
