import pytest

from monitor.config import SourceConfig
from monitor.keywords import passes_keyword_rules


@pytest.mark.parametrize(
    ("exclude", "require", "text", "kept"),
    [
        ([], [], "anything", True),
        (["acme corporation"], [], "Acme  Corporation sued the roadrunner", False),
        (["acme corporation"], [], "Acme coffee was cold", True),
        (["wile"], [], "Wiley's review", True),  # whole words only
        ([], ["coffee", "latte"], "the LATTE was burnt", True),
        ([], ["coffee", "latte"], "acme anvils are heavy", False),
        (["anvil"], ["acme"], "acme anvil", False),  # exclusion wins
    ],
)
def test_keyword_rules(exclude, require, text, kept):
    source = SourceConfig(name="s", type="hackernews", exclude=exclude, require=require)
    assert passes_keyword_rules(source, {"title": None, "text": text}) is kept


def test_rules_look_at_the_title_too():
    source = SourceConfig(name="s", type="reddit", require=["acme"])
    assert passes_keyword_rules(source, {"title": "Acme downtown", "text": "so slow today"})
