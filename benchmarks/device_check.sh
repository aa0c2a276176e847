#!/usr/bin/env bash
# The GPU machine's checks in one run, well inside 8 minutes, all figures in one JSON.
#
#   benchmarks/device_check.sh [--dry-run] [OUT.json]      (or DRY=1 benchmarks/device_check.sh)
#
# 1. the CUDA tests (pytest -m cuda: vmap against per-point, chunked exact BN, CUDA against CPU,
#    TF32/bf16 differences), their counts and recorded differences;
# 2. benchmarks/gpu.py: resnet20-noskip over 1024 images with each strategy against the GPU's
#    own matmul rates, measured in the same run;
# 3. the demo (lossart demo --quick --no-render, compute on the GPU) and its still rendered with
#    Cycles on the GPU at 1920x1080.
# OUT.json defaults to $OUT/device_check.json, else ./device_check.json. On a machine without
# CUDA use --dry-run: tiny sizes on the CPU, a synthetic bundle instead of the demo, every CUDA
# part skipped and said so; it exits 0 when everything that ran passed. Each step has its own
# time limit (8 minutes together); a step that fails or times out is recorded and the others
# still run. The still lands beside the report (device_check_still.png).
set -u
cd "$(dirname "$0")/.."
DRY=${DRY:-0}
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
REPORT=${1:-${OUT:-.}/device_check.json}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" LOSSART_QUIET=1 PYTHONUNBUFFERED=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/device_check.XXXXXX")
mkdir -p "$(dirname "$REPORT")"
STILL="$(dirname "$REPORT")/device_check_still.png"
started=$(date +%s)
echo "device_check: dry run $DRY, report $REPORT, work $WORK"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to WORK/NAME.log
    local name=$1 limit=$2 t0 rc
    shift 2
    t0=$(date +%s)
    timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    echo "$name $rc $(($(date +%s) - t0))" >>"$WORK/steps"
    echo "device_check: $name: exit $rc in $(($(date +%s) - t0)) s"
    tail -n 15 "$WORK/$name.log"
}

# 1. CUDA tests (skipped, with their reason, without CUDA).
step cuda_tests 90 "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py \
    -rs --junitxml "$WORK/cuda_tests.xml"

# 2. Strategies against the matmul rate.
# dry-run limits are generous: a shared CPU can be 5x slower than a quiet one
if [ "$DRY" = 1 ]; then
    step gpu_bench 300 "$PYTHON" benchmarks/gpu.py --dry-run --json "$WORK/gpu.json"
else
    step gpu_bench 180 "$PYTHON" benchmarks/gpu.py --json "$WORK/gpu.json"
fi

# 3. The demo's still on the GPU (dry run: a synthetic bundle, 64x36, on the CPU).
if [ "$DRY" = 1 ]; then
    step bundle 120 "$PYTHON" -c "from lossart.terrain.synthetic import synthetic_bundle as s; s('$WORK/bundle', frames=2, size=17)"
    step render 300 "$PYTHON" benchmarks/gpu.py --dry-run --no-bench --render "$WORK/bundle" \
        --render-out "$STILL" --json "$WORK/render.json"
else
    step demo 120 "$PYTHON" -m lossart demo --quick --no-render --device cuda --out "$WORK/demo"
    step render 90 "$PYTHON" benchmarks/gpu.py --no-bench --render "$WORK/demo/run" \
        --size 1920x1080 --render-out "$STILL" --json "$WORK/render.json"
fi

"$PYTHON" - "$WORK" "$REPORT" "$DRY" "$started" <<'EOF'
import json, sys, time, xml.etree.ElementTree as ET
from pathlib import Path

work, report, dry, started = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
out = {"dry_run": dry, "steps": {}, "skipped": []}
for line in (work / "steps").read_text().splitlines():
    name, rc, seconds = line.split()
    out["steps"][name] = {"exit": int(rc), "seconds": int(seconds), "timed_out": rc in ("124", "137")}
xml = work / "cuda_tests.xml"
if xml.is_file():
    suite = ET.parse(xml).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    tests = {"tests": int(suite.get("tests", 0)), "failures": int(suite.get("failures", 0)),
             "errors": int(suite.get("errors", 0)), "skipped": int(suite.get("skipped", 0)),
             "recorded": {}}
    for case in suite.iter("testcase"):
        for prop in case.iter("property"):
            tests["recorded"][prop.get("name")] = float(prop.get("value"))
        skip = case.find("skipped")
        if skip is not None and tests["skipped"] and not out["skipped"]:
            out["skipped"].append("CUDA tests: " + (skip.get("message") or "skipped"))
    out["cuda_tests"] = tests
for part in ("gpu", "render"):
    path = work / f"{part}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        out["skipped"] += data.pop("skipped", [])
        out[part] = data
if dry:
    out["skipped"].append("dry run: the demo replaced by a synthetic bundle; tiny sizes on the CPU")
out["seconds"] = int(time.time()) - started
report.write_text(json.dumps(out, indent=1))
ok = all(s["exit"] == 0 for s in out["steps"].values())
best = out.get("gpu", {}).get("best", {})
print(f"device_check: {'ok' if ok else 'FAILED'} in {out['seconds']} s; report {report}")
if best:
    print(f"device_check: best strategy {best['strategy']} {best['points_per_s']:.1f} points/s")
for line in out["skipped"]:
    print(f"device_check: skipped: {line}")
sys.exit(0 if ok else 1)
EOF
rc=$?
rm -rf "$WORK/demo" "$WORK/bundle"
exit $rc
