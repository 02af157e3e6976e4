#!/usr/bin/env bash
# One run for a machine with a real GPU: builds the workspace, runs the bench (JSON) and
# the same-shape PyTorch step (torch_step.py; CUDA when present) and writes both into one
# JSON file. Meant to finish in under 10 minutes.
#
#   examples/bench/gpu.sh [--quick] [--out FILE] [--python PY]
#
# --quick   only the dispatch-count rows and the small PyTorch model, one step each: checks
#           every piece of the script on a machine without a GPU in a few minutes.
# --out     the JSON written (default: bench-gpu.json in the repository root).
# --python  a Python with torch, transformers 5.18 and peft 0.21 (default: $WEBPEFT_TORCH_PYTHON,
#           else .venv-golden/bin/python, else a .venv-bench made here with pip).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
quick=0
out="$root/bench-gpu.json"
py="${WEBPEFT_TORCH_PYTHON:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    --python) py="$2"; shift ;;
    *) echo "gpu.sh: unknown argument $1 (expected --quick, --out FILE, --python PY)" >&2; exit 2 ;;
  esac
  shift
done

cd "$root"
start=$(date +%s)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$work}"

if [ -z "$py" ]; then
  if [ -x "$root/.venv-golden/bin/python" ]; then
    py="$root/.venv-golden/bin/python"
  else
    if [ ! -x "$root/.venv-bench/bin/python" ]; then
      echo "gpu.sh: making .venv-bench (torch, transformers 5.18, peft 0.21)" >&2
      python3 -m venv "$root/.venv-bench"
      "$root/.venv-bench/bin/pip" install --quiet torch transformers==5.18.0 peft==0.21.0 safetensors
    fi
    py="$root/.venv-bench/bin/python"
  fi
fi
"$py" -c "import torch, transformers, peft" || { echo "gpu.sh: $py lacks torch, transformers or peft" >&2; exit 1; }

echo "gpu.sh: building" >&2
[ -d node_modules ] || npm ci --no-audit --no-fund >&2
npx tsc -b tsconfig.json >&2
built=$(date +%s)

echo "gpu.sh: bench" >&2
if [ "$quick" = 1 ]; then
  bench_args=(--json --runs 1 --only "dispatches per decoder layer")
  bench_limit=300
else
  bench_args=(--json)
  bench_limit=420
fi
bench_rc=0
(cd examples/bench && timeout "$bench_limit" npx tsx main.ts "${bench_args[@]}") > "$work/bench.json" 2> "$work/bench.err" || bench_rc=$?
benched=$(date +%s)

echo "gpu.sh: PyTorch step" >&2
torch_args=()
[ "$quick" = 1 ] && torch_args=(--quick)
torch_rc=0
timeout 240 "$py" examples/bench/torch_step.py "${torch_args[@]}" > "$work/torch.json" 2> "$work/torch.err" || torch_rc=$?
done_at=$(date +%s)

# One JSON: each part's output (or its exit status and the end of its stderr), and the timings.
node - "$work" "$out" "$quick" "$bench_rc" "$torch_rc" "$((built - start))" "$((benched - built))" "$((done_at - benched))" <<'NODE'
const fs = require('node:fs');
const { execSync } = require('node:child_process');
const [work, out, quick, benchRc, torchRc, buildS, benchS, torchS] = process.argv.slice(2);
const part = (name, rc) => {
  const text = fs.readFileSync(`${work}/${name}.json`, 'utf8');
  if (Number(rc) === 0) {
    try { return JSON.parse(text); } catch (e) { /* reported below */ }
  }
  const err = fs.readFileSync(`${work}/${name}.err`, 'utf8').split('\n').slice(-20).join('\n');
  return { failed: true, exitStatus: Number(rc), stderrTail: err };
};
let commit = 'unknown';
try { commit = execSync('git rev-parse HEAD', { encoding: 'utf8' }).trim(); } catch { /* not a git checkout */ }
const result = {
  date: new Date().toISOString(),
  commit,
  quick: quick === '1',
  seconds: { build: Number(buildS), bench: Number(benchS), torch: Number(torchS) },
  bench: part('bench', benchRc),
  torch: part('torch', torchRc),
};
fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.error(`gpu.sh: wrote ${out} (build ${buildS} s, bench ${benchS} s, torch ${torchS} s)`);
process.exit(result.bench.failed || result.torch.failed ? 1 : 0);
NODE
