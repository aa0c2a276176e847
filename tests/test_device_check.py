"""benchmarks/device_check.sh runs on a CPU-only machine as a dry run: tiny sizes, every CUDA
part skipped and said so, one JSON report, exit 0 (the full run needs a GPU machine)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dry_run_writes_one_report_and_exits_0(tmp_path):
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and coreutils' timeout")
    report = tmp_path / "out" / "device_check.json"
    env = dict(os.environ, PYTHON=sys.executable, TMPDIR=str(tmp_path))
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "device_check.sh"), "--dry-run", str(report)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # the dry run is ~1 min on a quiet 2-core CPU, several on a loaded one
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["dry_run"] is True
    assert set(data["steps"]) == {"cuda_tests", "gpu_bench", "bundle", "render"}
    assert all(s["exit"] == 0 for s in data["steps"].values())
    assert data["cuda_tests"]["tests"] >= 5 and data["cuda_tests"]["failures"] == 0
    if not torch.cuda.is_available():
        assert data["cuda_tests"]["skipped"] == data["cuda_tests"]["tests"]
        assert any("needs a CUDA device" in s for s in data["skipped"])
        assert any("CUDA graphs" in s for s in data["skipped"])
    gpu = data["gpu"]
    assert gpu["matmul_gflops"]["fp32"] > 0 and gpu["flops_per_point"] > 0
    rates = [r["points_per_s"] for r in gpu["strategies"].values()]
    assert len(rates) == 3 and min(rates) > 0
    assert 0 < gpu["precision"]["bfloat16"]["max_rel"] < 2e-2
    assert gpu["best"]["target_met"] is False  # a CPU never counts as meeting the GPU target
    if importlib.util.find_spec("bpy") is not None:
        assert data["render"]["render"]["size"] == [64, 36]
        assert (report.parent / "device_check_still.png").stat().st_size > 0
    else:
        assert any(s.startswith("render: neither") for s in data["skipped"])
    assert "device_check: ok" in result.stdout
