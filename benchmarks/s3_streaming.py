"""Memory and throughput of pushing and pulling a large model file over S3.

    python benchmarks/s3_streaming.py               # a 512 MB model file, a table
    python benchmarks/s3_streaming.py --size-mb 64  # smaller
    python benchmarks/s3_streaming.py --json        # the same numbers as JSON

The model repository pushes one file of random bytes (so nothing compresses) to simulated
S3 (moto's server, started by this script in a process of its own so its memory is not
counted) through the real ``minio`` client, then pulls it back; the pull verifies the
sha256 while the bytes stream to disk. A thread samples this process's resident memory
(``/proc/self/statm``) every 10 ms during each phase.

Reported per phase: seconds, MB/s, and the peak RSS growth over the RSS just before the
phase. Memory that stays bounded does not grow with the file: minio uploads in 5 MiB
multipart parts (one in memory at a time), and the pull reads 1 MiB chunks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

MB = 1024 * 1024
_CHUNK = 8 * MB


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples RSS in a thread while the ``with`` block runs; ``growth`` is peak - start."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, _rss_bytes())

    def __enter__(self) -> PeakRss:
        self.start = self.peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def write_random_file(path: Path, size: int) -> str:
    """``size`` random bytes, written in chunks; returns their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(_CHUNK, left))
            digest.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def start_server() -> tuple[subprocess.Popen[str], str]:
    """Simulated S3 in a child process; returns it and its ``host:port``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubetune.testing.s3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    endpoint = proc.stdout.readline().strip()
    if not endpoint:
        proc.kill()
        raise RuntimeError("the simulated S3 server did not start")
    return proc, endpoint


def bench(size_mb: int, workdir: Path) -> dict[str, Any]:
    """Push then pull one ``size_mb`` MB file; returns the measurements."""
    server, endpoint = start_server()
    try:
        os.environ.update(
            {
                "KUBETUNE_S3_ENDPOINT": f"http://{endpoint}",
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench-secret",
                "AWS_REGION": "us-east-1",
                "KUBETUNE_S3_CREATE_BUCKET": "1",
            }
        )
        from kubetune.repository import open_repository

        size = size_mb * MB
        model_dir = workdir / "model"
        model_dir.mkdir()
        sha256 = write_random_file(model_dir / "model.safetensors", size)
        repo = open_repository(f"s3://bench-{uuid.uuid4().hex[:8]}/models")
        repo.store.put_bytes("warm-up", b"1")  # client, bucket and imports before measuring

        with PeakRss() as push_rss:
            started = time.perf_counter()
            manifest = repo.push(
                "big",
                model_dir,
                params={},
                metrics={},
                data_fingerprint="",
                study="bench",
                trainer="none",
            )
            push_s = time.perf_counter() - started
        dest = workdir / "pulled"
        with PeakRss() as pull_rss:
            started = time.perf_counter()
            repo.pull("big", manifest.version, dest)  # verifies sha256 while streaming
            pull_s = time.perf_counter() - started
        pulled_ok = manifest.file("model.safetensors").sha256 == sha256
        pulled_ok = pulled_ok and (dest / "model.safetensors").stat().st_size == size
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "size_mb": size_mb,
        "push_s": push_s,
        "push_mb_per_s": size_mb / push_s,
        "push_peak_rss_growth_mb": push_rss.growth / MB,
        "pull_s": pull_s,
        "pull_mb_per_s": size_mb / pull_s,
        "pull_peak_rss_growth_mb": pull_rss.growth / MB,
        "pulled_file_verified": pulled_ok,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512, help="model file size (MB)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kubetune-s3-bench-") as tmp:
        result = bench(args.size_mb, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    size = result["size_mb"]
    print(f"model file: {size} MB of random bytes, simulated S3 (moto server) over loopback")
    for phase in ("push", "pull"):
        growth = result[f"{phase}_peak_rss_growth_mb"]
        print(
            f"{phase}: {result[f'{phase}_s']:.1f} s, {result[f'{phase}_mb_per_s']:.1f} MB/s,"
            f" peak RSS growth {growth:.1f} MB ({100 * growth / size:.1f} % of the file)"
        )
    print(f"pulled file verified: {result['pulled_file_verified']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
