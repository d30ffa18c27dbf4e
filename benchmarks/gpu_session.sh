#!/usr/bin/env bash
# The device check a session lent a GPU runs in one call (see README, "Tests and CI"): the host
# CPU's kind, the oneDNN AVX2 bug with oneDNN capped at AVX2 (does the ISA limit reproduce it on
# an AVX-512 CPU?), the portability regression test and the CUDA tests, then bench_device.py's
# per-architecture GPU costs. Results land in $OUT (or ./gpu_out).
set -u
OUT="${OUT:-gpu_out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if ls .whl/*.whl >/dev/null 2>&1; then  # pure-Python packages the device image lacks
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PWD:/tmp/site"
else
    export PYTHONPATH="$PWD"
fi
{
    nproc; grep -m1 "model name" /proc/cpuinfo
    echo "flags: $(grep -m1 -o -w 'avx512f\|avx512_bf16\|amx_bf16\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    python3 -c "import torch; print('torch', torch.__version__, torch.backends.cpu.get_cpu_capability(), torch.cuda.get_device_name())"
    python3 -c "import torch; print(torch.__config__.show())" | grep -i "onednn\|mkl-dnn\|mkldnn" | head -3
} 2>&1 | tee "$OUT/host.txt"
timeout 120 python3 benchmarks/onednn_issue6035.py --isa native AVX2 --timeout 15 2>&1 | tee "$OUT/onednn_issue6035.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_portability.py tests/test_device.py \
    -k "not a_study_on_a_gpu" 2>&1 | tail -25 | tee "$OUT/tests.txt"
timeout 200 python3 benchmarks/bench_device.py --budget 0.3 --json "$OUT/device_gpu.json" 2>&1 | tail -60 | tee "$OUT/bench_device.txt"
