"""scripts/gpu_check.py without a GPU: it runs, writes valid JSON and records every GPU check as skipped with
its reason."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="on a GPU the script runs the real checks (minutes): run it by hand"
)
def test_gpu_check_without_a_gpu_skips_every_check_with_its_reason(tmp_path):
    out = tmp_path / "gpu_check.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(out)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["environment"]["gpu"] is None and report["environment"]["torch"] == torch.__version__
    checks = report["checks"]
    assert {"torch_cuda_parity", "torch_cuda_fps", "tensorrt_build", "tensorrt_parity", "tensorrt_cache"} <= set(checks)
    for name, result in checks.items():
        assert result["status"] == "skipped" and result["reason"], name
    assert "no CUDA GPU" in checks["tensorrt_build"]["reason"]
    assert "no CUDA-graph mode" in checks["torch_cuda_graph_fps"]["reason"]
