import re

import pytest

from monitor.config import ConfigError, all_documented_keys, load_config, loads_config

from .conftest import REPO

GOOD_SOURCE = """
[[sources]]
name = "reviews"
type = "schema_org"
urls = ["https://acme.example/reviews"]
"""

BAD_CONFIGS = [
    # (config text, expected key path, expected message fragment)
    ('[digest]\nrecipients = ["m\u00e1nager@acme.example"]\n', "digest.recipients[0]", "non-ASCII"),
    ('[trends]\nspike_alpha = 2\n', "trends.spike_alpha", "probability"),
    ('[schedule]\ndigest_at = "8am"\n', "schedule.digest_at", "HH:MM"),
    (GOOD_SOURCE.replace('type = "schema_org"', 'type = "schema_org"\nevery = "often"'),
     "sources[0].every", 'expected a duration like "15m" or "1h", got \'often\''),
    (GOOD_SOURCE.replace('type = "schema_org"', 'type = "schema_org"\ncron = "every day"'),
     "sources[0].cron", "expected a cron expression"),
    (GOOD_SOURCE.replace('type = "schema_org"', 'type = "schema_org"\nbrnad = "Acme"'),
     "sources[0].brnad", 'unknown key (did you mean "brand"?)'),
    ('[[sources]]\ntype = "schema_org"\nurls = ["https://a.example/"]\n',
     "sources[0].name", "required key is missing"),
    ('[[sources]]\nname = "x"\ntype = "yelpish"\n',
     "sources[0].type", "unknown source type 'yelpish'"),
    ('[[locations]]\nid = "dt"\ntimezone = "Mars/Olympus"\n',
     "locations[0].timezone", "unknown IANA time zone 'Mars/Olympus'"),
    (GOOD_SOURCE.replace('urls = ["https://acme.example/reviews"]', 'urls = "https://acme.example/reviews"'),
     "sources[0].urls", "expected a list of strings"),
    (GOOD_SOURCE.replace('urls = ["https://acme.example/reviews"]', 'urls = ["ftp://acme.example/reviews"]'),
     "sources[0].urls[0]", "expected an http(s) URL"),
    (GOOD_SOURCE + 'enabled = "yes"\n', "sources[0].enabled", "expected true or false"),
    (GOOD_SOURCE + 'location = "uptown"\n', "sources[0].location", "unknown location 'uptown'"),
    (GOOD_SOURCE + GOOD_SOURCE, "sources[1].name", "duplicate source name 'reviews'"),
    ('[web]\nport = 99999\n', "web.port", "expected a port number"),
    ('[queue]\nsla_social = 60\n', "queue.sla_social", "expected a duration"),
    ('[queue]\ncomplaint_threshold = 1.5\n', "queue.complaint_threshold", "between 0 and 1"),
    ('[model]\nlabel_map = { negative = "angry" }\n', "model.label_map.negative", "expected one of complaint"),
    ('[stroage]\npath = "x.db"\n', "stroage", 'unknown key (did you mean "storage"?)'),
    ('[[sources]]\nname = "r"\ntype = "reddit"\nclient_secret_env = "my secret!"\nsearch = ["acme"]\n',
     "sources[0].client_secret_env", "expected the name of an environment variable"),
    ('[[sources]]\nname = "r"\ntype = "reddit"\n', "sources[0].search", "needs search terms or subreddits"),
    ("[storage\npath = 1", "config.toml", "invalid TOML"),
    ('[[sources]]\nname = "hn"\ntype = "hackernews"\nsearch = ["acme"]\nbrands = { Rival = ["rival coffee"] }\n',
     "sources[0].brands.Rival[0]", "'rival coffee' is not in this source's `search`; list it there as well"),
    ('[[sources]]\nname = "y"\ntype = "yelp"\nbusiness_ids = ["a", "b"]\nbrands = { R = ["a"], S = ["A"] }\n',
     "sources[0].brands.S[0]", "'A' is already listed under brand 'R'"),
    ('[[sources]]\nname = "y"\ntype = "yelp"\nbusiness_ids = ["a"]\nbrands = ["a"]\n',
     "sources[0].brands", "expected a table like"),
    ('[[sources]]\nname = "y"\ntype = "yelp"\nbusiness_ids = ["a"]\nbrands = { R = "a" }\n',
     "sources[0].brands.R", "expected a non-empty list of search terms or ids"),
    (GOOD_SOURCE + 'brands = { R = ["x"] }\n', "sources[0].brands", "unknown key"),  # a page crawler has no terms
]  # fmt: skip


@pytest.mark.parametrize(("text", "key", "fragment"), BAD_CONFIGS, ids=[c[1] for c in BAD_CONFIGS])
def test_bad_config_names_the_key(text, key, fragment):
    with pytest.raises(ConfigError) as info:
        loads_config(text)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{key}: ")
    assert "\n" not in str(info.value)


def test_example_config_is_valid():
    config = load_config(REPO / "config.toml")
    assert {s.type for s in config.sources} == {"schema_org", "reddit"}
    assert config.storage_path == REPO / "monitor.db"
    assert config.source("reddit-acme").options["client_secret_env"].endswith("SECRET")


def test_defaults_apply_to_an_empty_file():
    config = loads_config("")
    assert config.model.default == "bundled"
    assert config.web.host == "127.0.0.1"
    assert config.queue.sla_social.total_seconds() == 3600
    assert config.sources == []


def test_unknown_source_name_is_reported():
    config = loads_config(GOOD_SOURCE)
    with pytest.raises(ConfigError, match="no source named 'nope' \\(configured: reviews\\)"):
        config.source("nope")


@pytest.mark.parametrize("key", all_documented_keys())
def test_every_config_key_is_documented(key):
    name = key.split(".")[-1]
    docs = (REPO / "docs" / "config.md").read_text()
    example = (REPO / "config.toml").read_text()
    assert f"`{name}`" in docs, f"{key} is not documented in docs/config.md"
    assert re.search(rf"(^|[#\s]){re.escape(name)}\s*=", example, re.M), f"{key} is missing from config.toml"


def test_secret_from_env_names_the_variable(monkeypatch):
    from monitor.config import secret_from_env

    config = loads_config('[[sources]]\nname = "r"\ntype = "reddit"\nsearch = ["acme"]\n')
    monkeypatch.delenv("REDDIT_CLIENT_SECRET", raising=False)
    with pytest.raises(ConfigError, match="REDDIT_CLIENT_SECRET is not set"):
        secret_from_env(config.sources[0], "client_secret_env")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "s3cret")
    assert secret_from_env(config.sources[0], "client_secret_env") == "s3cret"


def test_brands_map_terms_and_ids_to_brands():
    from monitor.brands import brand_for

    config = loads_config(
        '[[sources]]\nname = "m"\ntype = "mastodon"\nbase_url = "https://m.example"\nbrand = "Acme"\n'
        'tags = ["acmecoffee", "RivalCoffee"]\nsearch = ["rival coffee"]\n'
        'brands = { "Rival Coffee" = ["#rivalcoffee", "Rival Coffee"] }\n'
    )
    source = config.source("m")
    assert source.options["brands"] == {"Rival Coffee": ["#rivalcoffee", "Rival Coffee"]}
    # Matched as the spiders name them: a tag without "#", any case.
    assert brand_for(source, "RivalCoffee") == brand_for(source, "rival coffee") == "Rival Coffee"
    assert brand_for(source, "acmecoffee") == "Acme"
    plain = loads_config('[[sources]]\nname = "h"\ntype = "hackernews"\nsearch = ["acme"]\nbrand = "Acme"\n')
    assert plain.sources[0].options["brands"] == {} and brand_for(plain.sources[0], "acme") == "Acme"
