#!/usr/bin/env bash
# One GPU check in under 8 minutes, nothing installed beyond the project's own install:
# the `gpu` tests, vqclip vs the plain loop at 512² in fp32/fp16/bf16, the pixel engine at 720p,
# and the estimator's bytes against torch.cuda.max_memory_allocated (printed on each row).
#   bash benchmarks/gpu_check.sh            (from a checkout with the project installed)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)" || exit 1
echo "== gpu tests"
timeout 180 python -m pytest -q -m gpu tests/ 2>&1 | tail -3
echo "== side by side (vqclip step vs plain fp32 loop, alternating)"
for p in fp32 fp16 bf16; do
  timeout 90 python benchmarks/side_by_side.py --device cuda --cases vqgan256,vqgan512 --precision "$p" --iterations 8 --warmup 2 2>/dev/null | tail -3
done
timeout 90 python benchmarks/side_by_side.py --device cuda --cases pixels720 --precision auto --iterations 8 --warmup 2 2>/dev/null | tail -2
