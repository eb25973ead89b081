"""The S3 streaming benchmark runs end to end against simulated S3 (a moto server in a
child process) with a small file, so it cannot rot. No memory or speed assertion here:
the figures are measured with the full size (see the README)."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

_MISSING = [m for m in ("minio", "moto") if importlib.util.find_spec(m) is None]
if _MISSING and os.environ.get("CI"):
    raise RuntimeError(f"CI is set but {', '.join(_MISSING)} is not installed")
if _MISSING:
    pytest.skip(f"simulated S3 needs {', '.join(_MISSING)}", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "s3_streaming.py"


@pytest.fixture
def streaming(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubetune_bench_s3_streaming", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The benchmark sets the S3 variables in os.environ: keep them out of other tests.
    for name in (
        "KUBETUNE_S3_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "KUBETUNE_S3_CREATE_BUCKET",
    ):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    return module


def test_s3_streaming_benchmark_smoke(streaming: ModuleType, tmp_path: Path) -> None:
    result = streaming.bench(6, tmp_path)
    assert result["size_mb"] == 6
    assert result["pulled_file_verified"] is True
    for key in ("push_s", "push_mb_per_s", "pull_s", "pull_mb_per_s"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    for key in ("push_peak_rss_growth_mb", "pull_peak_rss_growth_mb"):
        assert math.isfinite(result[key]) and result[key] >= 0, key
    assert (tmp_path / "pulled" / "model.safetensors").stat().st_size == 6 * 1024 * 1024


def test_peak_rss_sampler_sees_an_allocation(streaming: ModuleType) -> None:
    with streaming.PeakRss() as rss:
        block = bytearray(64 * 1024 * 1024)  # touched: resident
        block[::4096] = b"x" * len(block[::4096])
        time.sleep(0.1)  # several sampling intervals while it is resident
        del block
    assert rss.growth >= 48 * 1024 * 1024
    assert sys.platform.startswith("linux")  # /proc/self/statm: the benchmark is Linux-only
