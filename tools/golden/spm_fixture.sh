#!/usr/bin/env bash
# Trains the small SentencePiece fixture used by tests/text/spm_torch_test.cpp
# with Debian's spm_train (sentencepiece 0.1.97): unigram, identity normalisation.
set -euo pipefail
out="$(cd "$(dirname "$0")/../.." && pwd)/tests/data/spm"
mkdir -p "$out"
spm_train --input=/usr/share/common-licenses/Apache-2.0 --model_prefix="$out/unigram_identity" \
  --vocab_size=300 --model_type=unigram --normalization_rule_name=identity --character_coverage=1.0 \
  --minloglevel=2
rm -f "$out/unigram_identity.vocab"
echo "wrote $out/unigram_identity.model"
