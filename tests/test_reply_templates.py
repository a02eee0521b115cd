import pytest

from monitor.config import ConfigError, QueueConfig
from monitor.queue.items import mark_replied, refresh_queue
from monitor.queue.templates import (
    BUNDLED,
    candidates,
    choose_template,
    load_templates,
    parse_templates,
    placeholder_values,
    render,
    suggest_reply,
)

from .helpers import XSS, add_classified

TEMPLATES = """
[[templates]]
id = "general"
text = "Hi {author}, sorry. Write to {contact}."

[[templates]]
id = "complaint"
reasons = ["complaint"]
text = "Sorry {author}."

[[templates]]
id = "wait-1"
topics = ["wait_time"]
text = "Sorry about the wait at {location}, {author}."

[[templates]]
id = "wait-2"
topics = ["wait_time"]
text = "{author}, we are fixing the queues at {business}."

[[templates]]
id = "wait-yelp"
topics = ["wait_time"]
sources = ["yelp"]
text = "Yelp wait reply for {author}."

[[templates]]
id = "safety"
flags = ["safety_health"]
text = "We take this seriously, {author}."

[[templates]]
id = "wait-es"
topics = ["wait_time"]
languages = ["es"]
text = "Perdón por la espera, {author}."
"""


def item(**over):
    base = {"id": 1, "reason": "complaint", "topics": ["wait_time"], "lang": "en", "source": "reviews",
            "source_type": "schema_org", "author": "Pat", "location": "downtown"}  # fmt: skip
    return {**base, **over}


def ids(templates):
    return [t.id for t in templates]


def test_the_most_specific_fitting_templates_are_candidates():
    templates = parse_templates(TEMPLATES, "t.toml")
    assert ids(candidates(templates, item())) == ["wait-1", "wait-2"]
    # topic + source beats topic alone; a source type matches as well as a source name
    assert ids(candidates(templates, item(source_type="yelp"))) == ["wait-yelp"]
    assert ids(candidates(templates, item(lang="es"))) == ["wait-es"]
    assert ids(candidates(templates, item(flags=["safety_health", "question"]))) == ["safety"]
    assert ids(candidates(templates, item(topics=[]))) == ["complaint"]
    assert ids(candidates(templates, item(topics=[], reason="question"))) == ["general"]


def test_rotation_picks_the_least_recently_sent():
    templates = parse_templates(TEMPLATES, "t.toml")
    first = choose_template(templates, item(id=2), {})
    # never-sent templates are spread over items by id, so two items shown at once differ
    assert first.id != choose_template(templates, item(id=3), {}).id
    used = {first.id: 1}
    second = choose_template(templates, item(id=2), used)
    assert second.id != first.id
    used[second.id] = 2
    assert choose_template(templates, item(id=2), used).id == first.id


def test_rotation_follows_replies_recorded_in_the_store(fresh_db):
    templates = parse_templates(TEMPLATES, "t.toml")
    for n in range(4):
        add_classified(fresh_db, "reviews", str(n), "waited forever", "complaint", topics=["wait_time"])
    refresh_queue(fresh_db, QueueConfig())
    values = {"author": "Pat", "location": "Downtown", "business": "Acme", "contact": "c@x", "source": "reviews"}
    sent = []
    for item_id in range(1, 5):
        suggestion = suggest_reply(fresh_db, templates, item(id=1), values)
        sent.append(suggestion.template_id)
        mark_replied(fresh_db, item_id, suggestion.text, template=suggestion.template_id)
    assert all(a != b for a, b in zip(sent, sent[1:], strict=False))
    assert set(sent) == {"wait-1", "wait-2"}


def test_placeholders_are_filled_with_plain_values():
    [template] = [t for t in parse_templates(TEMPLATES, "t.toml") if t.id == "general"]
    values = placeholder_values(
        {"author": XSS + " {contact}", "location": "downtown", "brand": "Acme"},
        {"downtown": "Acme Downtown"},
        {"downtown": "downtown@acme.example"},
        "care@acme.example",
    )
    text = render(template, values)
    # the author's text is inserted as is (the page escapes it) and never re-read as a placeholder
    assert text == f"Hi {XSS} {{contact}}, sorry. Write to downtown@acme.example."
    assert placeholder_values({"author": None}, {}, {}, "care@x")["author"] == "there"
    assert placeholder_values({"author": "x", "location": "airport"}, {}, {}, "care@x")["contact"] == "care@x"
    # no location: the business name reads well in "the team at {location}"
    assert placeholder_values({"brand": "Acme"}, {}, {}, "")["location"] == "Acme"


@pytest.mark.parametrize(
    "text, key, fragment",
    [
        ('[[templates]]\nid = "a"\ntext = "Hi {name}"', "t.toml: templates[0].text", "unknown placeholder {name}"),
        ('[[templates]]\ntext = "Hi"', "t.toml: templates[0].id", "required"),
        ('[[templates]]\nid = "a"', "t.toml: templates[0].text", "required"),
        ('[[templates]]\nid = "a"\ntext = "x"\ntopics = "wait_time"', "t.toml: templates[0].topics", "list"),
        ('[[templates]]\nid = "a"\ntext = "x"\nreasons = ["praise"]', "t.toml: templates[0].reasons", "praise"),
        ('[[templates]]\nid = "a"\ntext = "x"\ncolour = 1', "t.toml: templates[0].colour", "unknown key"),
        ("[[templates]\n", "t.toml", "invalid TOML"),
    ],
)
def test_bad_templates_name_the_file_and_key(text, key, fragment):
    with pytest.raises(ConfigError) as info:
        parse_templates(text, "t.toml")
    assert info.value.key == key and fragment in info.value.message


def test_duplicate_ids_across_files_are_refused(tmp_path):
    (tmp_path / "a.toml").write_text('[[templates]]\nid = "x"\ntext = "one"\n')
    (tmp_path / "b.toml").write_text('[[templates]]\nid = "x"\ntext = "two"\n')
    with pytest.raises(ConfigError, match="duplicate template id"):
        load_templates(tmp_path)


def test_bundled_templates_cover_every_topic_and_questions():
    templates = load_templates(None)
    assert BUNDLED.is_dir() and templates
    for topic in ("wait_time", "staff_attitude", "product_quality", "price_billing", "cleanliness_ambience",
                  "delivery_logistics", "app_website", "not_resolved"):  # fmt: skip
        assert candidates(templates, item(topics=[topic]))[0].topics == (topic,)
    assert candidates(templates, item(topics=[], reason="question"))
    assert len(candidates(templates, item(topics=[]))) >= 2  # the general complaint replies rotate too
