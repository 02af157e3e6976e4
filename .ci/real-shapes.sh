#!/usr/bin/env bash
# Builds the real-shape checkpoint cache that the real-shapes tests read
# (tools/golden/real_shapes.py: SmolLM2-135M, Qwen2.5-0.5B and GPT-2 small shapes with
# seeded random weights, about 2.3 GB in $WEBPEFT_REAL_SHAPES_DIR, default
# .cache/real-shapes). Nothing is done when the cache's manifest names the current
# script; otherwise a virtual environment (.venv-golden, or $WEBPEFT_GOLDEN_VENV) gets
# torch and transformers and the script runs (about 2 minutes of CPU), checking the
# files it writes against the committed goldens' SHA-256.
set -euo pipefail

cd "$(dirname "$0")/.."

if python3 tools/golden/real_shapes.py --check; then
  exit 0
fi

venv="${WEBPEFT_GOLDEN_VENV:-.venv-golden}"
if ! "$venv/bin/python" -c 'import torch, safetensors, transformers; assert transformers.__version__ == "5.18.0"' 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # pip asks its default index before any extra one, with slow retries where that index
  # is unreachable: when pip's configuration names extra (local) indexes, the first
  # becomes the index and the rest stay extra.
  index_args=()
  extra="$("$venv/bin/pip" config get global.extra-index-url 2>/dev/null || true)"
  if [ -n "$extra" ]; then
    read -r -a urls <<<"$extra"
    index_args=(--index-url "${urls[0]}")
    for url in "${urls[@]:1}"; do index_args+=(--extra-index-url "$url"); done
  fi
  # torch pinned to the cpu build's version: a newer torch on an index may be a CUDA build.
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${index_args[@]}" \
    torch==2.13.0 transformers==5.18.0 safetensors
fi

"$venv/bin/python" tools/golden/real_shapes.py
