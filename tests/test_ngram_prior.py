"""Per-language n-gram priors joined to a model's logits (monitor/classify/ngram_prior.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.train_ngram_priors import choose, mean_score, set_score, train_prior
from monitor.classify.model import ModelLoadError, SentimentModel
from monitor.classify.ngram_prior import (
    PRIORS_FILE,
    NgramPrior,
    prepare,
    prior_file,
    read_priors,
    remove_priors,
    write_priors,
)
from monitor.classify.stage import Classifier
from monitor.config import ModelConfig
from tests.conftest import build_tiny_model

# A small three-class Spanish corpus: the words decide the class, so a prior trained on it is sure of them.
COMPLAINT = ["servicio pésimo y lento", "comida horrible, nunca más", "muy mal, pésimo trato", "horrible espera"]
NEUTRAL = ["abren a las nueve", "el local está en la calle mayor", "hoy es martes", "la carta cambia en mayo"]
PRAISE = ["excelente comida, gracias", "servicio genial y rápido", "me encantó, excelente", "genial todo"]
TEXTS = COMPLAINT + NEUTRAL + PRAISE
LABELS = [0] * 4 + [1] * 4 + [2] * 4


@pytest.fixture(scope="module")
def prior() -> NgramPrior:
    return train_prior("es", TEXTS * 3, LABELS * 3)


def test_log_probs_are_the_classifiers_own(prior):
    from scipy.sparse import hstack
    from sklearn.linear_model import LogisticRegression

    word, char = prior.word, prior.char
    prepared = [prepare(t) for t in TEXTS * 3]
    features = hstack([word.transform(prepared), char.transform(prepared)]).tocsr()
    clf = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced").fit(features, LABELS * 3)
    expected = clf.predict_log_proba(features[: len(TEXTS)])
    assert np.allclose(prior.log_probs(TEXTS), expected, atol=1e-5)
    assert (prior.log_probs(TEXTS).argmax(axis=1) == LABELS).all()


def test_saved_prior_reads_back_with_int8_coefficients(prior, tmp_path):
    prior.weight = 1.5
    write_priors(tmp_path, {"es": prior}, {"note": "test"})
    listing = json.loads((tmp_path / PRIORS_FILE).read_text())
    assert listing["languages"] == {"es": {"weight": 1.5}} and listing["trained"] == {"note": "test"}
    loaded = read_priors(tmp_path)["es"]
    assert loaded.weight == 1.5
    assert loaded.word.vocabulary == prior.word.get_feature_names_out().tolist()
    probe = TEXTS + ["pésimo pero excelente", "nada que ver"]
    # int8 rows keep each coefficient to within half a step of its class's largest: log-probabilities move little.
    assert np.abs(loaded.log_probs(probe) - prior.log_probs(probe)).max() < 0.02
    assert (loaded.log_probs(TEXTS).argmax(axis=1) == LABELS).all()
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pickle"))


def test_rewriting_drops_the_files_of_languages_no_longer_listed(prior, tmp_path):
    write_priors(tmp_path, {"es": prior, "pt": NgramPrior("pt", 1.0, prior.word, prior.char, prior.coef,
                                                          prior.intercept)})  # fmt: skip
    assert prior_file(tmp_path, "pt").is_file()
    write_priors(tmp_path, {"es": prior})
    assert not prior_file(tmp_path, "pt").exists() and set(read_priors(tmp_path)) == {"es"}


def test_hostile_and_odd_texts_get_finite_log_probabilities(prior):
    texts = ["", " ", "<script>alert(1)</script>", "🤬🤬🤬", "x" * 1_000_000, "\x00\u202e pésimo", "ñ" * 5000]
    out = prior.log_probs(texts)
    assert out.shape == (len(texts), 3) and np.isfinite(out).all()
    assert np.allclose(np.exp(out).sum(axis=1), 1.0)
    assert len(prepare("a " * 100_000)) <= 2001  # a megabyte costs what 2,000 characters do


@pytest.mark.parametrize(
    ("listing", "message"),
    [
        ("{not json", "not an n-gram prior list"),
        ('{"languages": {"es": {}}}', "not an n-gram prior list"),
        ('{"languages": {"es": {"weight": -1}}}', "must be a number in (0, 10]"),
        ('{"languages": {"es": {"weight": "NaN"}}}', "must be a number in (0, 10]"),
        ('{"languages": {"de": {"weight": 1}}}', "ngram-de.safetensors is missing"),
    ],
)
def test_a_broken_list_is_named_at_load(prior, tmp_path, listing, message):
    prior.save(tmp_path)
    (tmp_path / PRIORS_FILE).write_text(listing)
    with pytest.raises(ValueError, match="ngram_priors.json") as err:
        read_priors(tmp_path)
    assert message in str(err.value)


def test_a_broken_prior_file_is_named_at_load(prior, tmp_path):
    write_priors(tmp_path, {"es": prior})
    prior_file(tmp_path, "es").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match="ngram-es.safetensors"):
        read_priors(tmp_path)


def _tamper(directory, change) -> None:
    from safetensors.numpy import load_file, save_file

    path = prior_file(directory, "es")
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.update({"coef.scale": t["coef.scale"][:2]}), "do not fit 3 classes"),
        (lambda t: t.update({"intercept": np.array([0.0, np.nan, 0.0], dtype=np.float32)}), "not finite"),
        (lambda t: t.update({"coef.scale": np.array([1, np.inf, 1], dtype=np.float16)}), "not finite"),
        (lambda t: t.update({"word.idf.uint8": t["word.idf.uint8"][:-1]}), "idf weights"),
        (lambda t: t.update({"char.idf.range": np.zeros(3, dtype=np.float32)}), "3 bounds"),
        (lambda t: t.update({"coef.int8": t["coef.int8"].astype(np.float32)}), "not int8"),
        (lambda t: t.pop("intercept"), "no 'intercept' tensor"),
        (lambda t: t.update({"word.vocab.xz": np.frombuffer(b"not xz", dtype=np.uint8)}), "ngram-es.safetensors"),
    ],
)
def test_a_tampered_prior_file_fails_at_load_naming_the_file(prior, tmp_path, change, message):
    write_priors(tmp_path, {"es": prior})
    _tamper(tmp_path, change)
    with pytest.raises(ValueError, match="ngram-es.safetensors") as err:
        read_priors(tmp_path)
    assert message in str(err.value)


def test_a_duplicated_term_fails_at_load(prior, tmp_path):
    import lzma

    write_priors(tmp_path, {"es": prior})
    terms = prior.word.get_feature_names_out().tolist()
    terms[1] = terms[0]
    blob = lzma.compress("\n".join(terms).encode())
    _tamper(tmp_path, lambda t: t.update({"word.vocab.xz": np.frombuffer(blob, dtype=np.uint8)}))
    with pytest.raises(ValueError, match="listed twice"):
        read_priors(tmp_path)


def test_a_listed_code_is_a_language_code_not_a_path(prior, tmp_path):
    write_priors(tmp_path, {"es": prior})
    (tmp_path / PRIORS_FILE).write_text('{"languages": {"../es": {"weight": 1}}}')
    with pytest.raises(ValueError, match="not a language code"):
        read_priors(tmp_path)


def test_writing_leaves_no_temporary_files_and_removing_leaves_nothing(prior, tmp_path):
    write_priors(tmp_path, {"es": prior})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ngram-es.safetensors", PRIORS_FILE]
    remove_priors(tmp_path)
    assert not list(tmp_path.iterdir()) and read_priors(tmp_path) == {}


def test_an_export_clears_priors_weighed_against_other_weights(tmp_path, prior):
    from transformers import AutoTokenizer

    from models.train import export, load_for_training

    path = build_tiny_model(tmp_path / "model", ["complaint", "neutral", "praise"])
    write_priors(path, {"es": prior})
    export(load_for_training(path), AutoTokenizer.from_pretrained(path), path, {})
    assert read_priors(path) == {} and not list(path.glob("ngram*"))


@pytest.fixture
def model_with_prior(tmp_path, prior):
    path = build_tiny_model(tmp_path / "multi", ["negative", "neutral", "positive"])
    prior.weight = 10.0  # the most a list allows: the prior decides every text of its language
    write_priors(path, {"es": prior})
    return path


def test_the_prior_joins_the_logits_of_its_language_only(model_with_prior):
    model = SentimentModel(str(model_with_prior), max_length=32, threads=1, device="cpu")
    plain = [p.probs for p in model.predict(TEXTS)]
    as_spanish = model.predict(TEXTS, ["es"] * len(TEXTS))
    as_french = [p.probs for p in model.predict(TEXTS, ["fr"] * len(TEXTS))]
    assert as_french == plain  # no prior for French: the transformer alone
    assert [["complaint", "neutral", "praise"].index(p.label) for p in as_spanish] == LABELS
    for p in as_spanish:
        assert math.isclose(sum(p.probs.values()), 1.0, rel_tol=1e-5)
    mixed = model.predict(TEXTS[:2], ["es", "fr"])
    # Other batches, other padding: equal to float precision.
    assert mixed[0].probs == pytest.approx(as_spanish[0].probs, abs=1e-5)
    assert mixed[1].probs == pytest.approx(plain[1], abs=1e-5)


def test_one_language_per_text(model_with_prior):
    model = SentimentModel(str(model_with_prior), max_length=32, threads=1, device="cpu")
    with pytest.raises(ValueError, match="2 texts but 1 languages"):
        model.predict(TEXTS[:2], ["es"])


def test_the_prior_follows_the_models_own_output_order(tmp_path, prior):
    path = build_tiny_model(tmp_path / "reordered", ["positive", "negative", "neutral"])
    prior.weight = 10.0
    write_priors(path, {"es": prior})
    preds = SentimentModel(str(path), max_length=32, threads=1, device="cpu").predict(TEXTS, ["es"] * len(TEXTS))
    assert [["complaint", "neutral", "praise"].index(p.label) for p in preds] == LABELS


def test_classifier_passes_each_texts_language(model_with_prior, tiny_model_dir):
    config = ModelConfig(default=str(tiny_model_dir), multilingual=str(model_with_prior), max_length=32)
    results = Classifier(config).classify(TEXTS, ["es"] * len(TEXTS))
    assert [["complaint", "neutral", "praise"].index(pred.label) for _, pred, _ in results] == LABELS
    assert {name for _, _, name in results} == {str(model_with_prior)}  # the same model, not a new name


def test_a_broken_prior_list_fails_the_model_load_with_its_name(model_with_prior):
    (model_with_prior / PRIORS_FILE).write_text('{"languages": {"it": {"weight": 1}}}')
    with pytest.raises(ModelLoadError, match="ngram-it.safetensors is missing"):
        SentimentModel(str(model_with_prior), max_length=32, threads=1, device="cpu")


def _dev_set(gold, logp, prior_logp, routed=None):
    n = len(gold)
    return {"gold": np.array(gold), "logp": np.array(logp, dtype=float), "prior": np.array(prior_logp, dtype=float),
            "routed": np.ones(n, bool) if routed is None else np.array(routed), "metric": "macro_f1",
            "two_class": 1 not in gold}  # fmt: skip


def test_weight_choice_scores_halves_and_counts_unrouted_texts_wrong():
    # The transformer is unsure and wrong on every odd line; the prior is right and sure there.
    gold = [0, 1, 2, 0, 1, 2]
    logp = [[0, -1, -2], [-1, 0, -2], [-2, -1, 0], [-1, -1.1, -0.9], [-1, -0.9, -1.1], [-0.9, -1.1, -1]]
    prior = [[0, -3, -3], [-3, 0, -3], [-3, -3, 0]] * 2
    sets = {"es": _dev_set(gold, logp, prior)}
    assert mean_score(sets, 0.0, 0) < 1.0 or mean_score(sets, 0.0, 1) < 1.0
    assert mean_score(sets, 1.0, None) == 1.0 and choose(sets, None) > 0
    # Ties go to the smaller weight: nothing to gain, no prior.
    assert choose({"es": _dev_set(gold[:3], logp[:3], [[0, 0, 0]] * 3)}, None) == 0.0
    unrouted = _dev_set(gold, logp, prior, routed=[False] * 6)
    assert set_score(unrouted, 1.0, np.arange(6)) == 0.0


def test_training_needs_all_three_classes():
    with pytest.raises(ValueError, match="all three classes"):
        train_prior("es", COMPLAINT + PRAISE, [0] * 4 + [2] * 4)


# ------------------------------------------------------------------ the bundled priors


def test_bundled_multilingual_model_carries_a_prior_per_umsab_language_but_hindi():
    from models.train_ngram_priors import DEFAULT_LANGUAGES
    from monitor.classify.model import BUNDLED_MULTILINGUAL

    priors = read_priors(BUNDLED_MULTILINGUAL)
    assert set(priors) == set(DEFAULT_LANGUAGES) and "hi" not in priors
    assert len({p.weight for p in priors.values()}) == 1  # one weight, chosen for them all
    listing = json.loads((BUNDLED_MULTILINGUAL / PRIORS_FILE).read_text())
    assert "train_ngram_priors.py" in listing["trained"]["command"]


@pytest.mark.parametrize("which", ["BUNDLED_MODEL", "BUNDLED_MULTILINGUAL"])
def test_bundled_priors_were_weighed_against_the_bundled_weights(which):
    from models.train_topics import encoder_fingerprint
    from monitor.classify import model

    directory = getattr(model, which)
    listing = json.loads((directory / PRIORS_FILE).read_text())
    assert listing["trained"]["encoder_sha256"] == encoder_fingerprint(directory), (
        f"{directory.name} changed after its n-gram priors were weighed: re-run models/train_ngram_priors.py"
    )


def test_bundled_english_model_carries_an_english_prior_and_reads_clear_cases_with_it():
    from monitor.classify.model import BUNDLED_MODEL
    from tests.test_bundled_model import CLEAR_CASES

    assert set(read_priors(BUNDLED_MODEL)) == {"en"}
    results = Classifier(ModelConfig(max_length=128)).classify([text for text, _ in CLEAR_CASES])
    assert [(lang, pred.label) for lang, pred, _ in results] == [("en", label) for _, label in CLEAR_CASES]


def test_bundled_priors_join_the_multilingual_models_reading():
    cases = [
        ("Che schifo di servizio, un'ora di attesa e nessuno risponde", "complaint", "it"),
        ("Adorei o atendimento, voltarei com certeza!", "praise", "pt"),
        ("الخدمة سيئة جدا والموظفين غير محترمين", "complaint", "ar"),
        ("Qué vergüenza de atención, nunca más vuelvo", "complaint", "es"),
        ("Super Service, sehr freundliches Personal, danke!", "praise", "de"),
    ]
    classifier = Classifier(ModelConfig(max_length=128))
    results = classifier.classify([text for text, _, _ in cases])
    assert [(lang, pred.label) for lang, pred, _ in results] == [(lang, label) for _, label, lang in cases]
    model = classifier.model_for("es")
    alone = model.predict([text for text, _, _ in cases])
    assert all(a.probs != pred.probs for a, (_, pred, _) in zip(alone, results, strict=True))
