#!/usr/bin/env bash
# The GPU half of benchmarks/throughput.py, for a lent GPU machine (the device tool's `run`).
# Its image has torch, Lightning, torchmetrics, pandas, pyarrow, scipy, scikit-learn and
# matplotlib, no network, and lacks the pure-Python packages below. Here, first:
#   rm -rf .whl && pip download -q --no-deps -d .whl hydra-core==1.4.0rc3 omegaconf==2.4.1rc1 \
#       rtdl-num-embeddings entmax && pip wheel -q --no-deps -w .whl .
# then run with carry [".whl"] and command `bash benchmarks/gpu_throughput.sh`.
# Figures go to $OUT (or /tmp); each part is logged as it finishes.
set -euo pipefail
out=${OUT:-/tmp}
python3 -m pip install -q --no-index --no-deps .whl/*.whl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
run() {  # name, then throughput.py arguments
  local name=$1
  shift
  python3 benchmarks/throughput.py --accelerator gpu "$@" > "$out/$name.txt" 2> "$out/$name.err" || true
  grep -E "^(rows=|model|[a-zA-Z_]+ +(zoo|reference|eager|deepctr))" "$out/$name.txt" || tail -5 "$out/$name.err"
}
# eager zoo path beside the reference paths, then the static-shape compiled path (CUDA graphs)
run plain --batch-sizes 4096 256 --epochs 2
run compiled --batch-sizes 4096 256 --epochs 3 --drop-last --compile reduce-overhead --no-reference
run bf16 --batch-sizes 4096 256 --epochs 2 --drop-last --precision bf16-mixed --no-reference
