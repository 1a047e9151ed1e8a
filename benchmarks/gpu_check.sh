#!/usr/bin/env bash
# One GPU check in under 8 minutes, nothing installed beyond the project's own install:
# the `gpu` tests, vqclip vs the plain loop at 256²/512² in fp32/fp16/bf16, bf16 + torch.compile at 512²,
# 1280x720 with and without the decoder's activation checkpointing (generation.vqgan.checkpoint; the
# issue's bar: 720p in <= 15 GB), the pixel engine at 720p, and the estimator's bytes against
# torch.cuda.max_memory_allocated (printed on each row).
#   bash benchmarks/gpu_check.sh            (from a checkout with the project installed)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)" || exit 1
echo "== gpu tests"
timeout 180 python -m pytest -q -m gpu tests/ 2>&1 | tail -3
sbs() { timeout "$1" python benchmarks/side_by_side.py --device cuda --iterations 8 --warmup 2 "${@:2}" 2>/dev/null | tail -"$(( $(grep -o , <<<"$3" | wc -l) + 3 ))"; }
echo "== side by side (vqclip step vs plain fp32 loop, alternating)"
for p in fp32 fp16 bf16; do
  sbs 90 --cases vqgan256,vqgan512 --precision "$p"
done
echo "== torch.compile (the 1st step column is the compile)"
sbs 240 --cases vqgan512 --precision bf16 --compile on
echo "== 1280x720: plain fp32 vs fp16, then fp16 with the decoder's activation checkpointing (vq mem: <= 15 GB?)"
sbs 90 --cases vqgan720 --precision fp16
sbs 90 --cases vqgan720 --precision fp16 --checkpoint
sbs 90 --cases pixels720 --precision auto
