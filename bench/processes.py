"""
Real processes for the benchmarks and fault tests: an SMTP sink, Celery workers, a private
Redis or PostgreSQL server, and a sampler of the workers' memory. Each is started here and
stopped by its own process id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import common

VAR = common.ROOT / "var" / "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_tool(binary: str, package: str) -> str:
    """Find a Debian tool, installing its package when running as root; otherwise say how."""
    extra = ":".join(["/usr/sbin", "/usr/bin", *sorted(str(p) for p in Path("/usr/lib/postgresql").glob("*/bin"))])
    found = shutil.which(binary) or shutil.which(binary, path=extra)
    if found:
        return found
    if os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env)
        found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
        if found:
            return found
    sys.exit(f"{binary} is missing: install it with `sudo apt-get install -y {package}` and run again.")


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(process: subprocess.Popen | None, *, timeout: float = 20.0) -> None:
    """Terminate one process we started (and its group, for Celery's pool), then kill it if it lingers."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def start_smtp_sink(port: int) -> subprocess.Popen:
    """Postfix's smtp-sink: accepts and discards mail as fast as a client can send it."""
    binary = ensure_tool("smtp-sink", "postfix")
    process = subprocess.Popen(
        [binary, "-u", "nobody", f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port(port)
    return process


def start_recording_sink(port: int, record: Path, *, store: Path | None = None) -> subprocess.Popen:
    """An aiosmtpd process appending "arrival time, recipient" per accepted message to a file."""
    store_option = ["--store", str(store)] if store else []
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.faults.sink", "--port", str(port), "--record", str(record), *store_option],
        cwd=common.ROOT,
        start_new_session=True,
    )
    wait_for_port(port)
    return process


def start_worker(
    env: dict[str, str],
    *,
    name: str,
    concurrency: int = 2,
    log: Path | None = None,
    extra: list[str] | None = None,
    app: str = "config",
) -> subprocess.Popen:
    """
    The project's Celery worker (as in the Procfile) on the queue named in env["CELERY_QUEUE"];
    with `app`, another Celery app's (the benchmark's peer sender).
    """
    VAR.mkdir(parents=True, exist_ok=True)
    log = log or VAR / f"worker-{name}.log"
    command = [
        str(common.ROOT / ".venv" / "bin" / "celery"),
        "-A",
        app,
        "worker",
        "--loglevel=WARNING",
        f"--concurrency={concurrency}",
        "--without-gossip",
        "--without-mingle",
        "-n",
        f"{name}@%h",
        *(extra or []),
    ]
    with open(log, "ab") as out:
        return subprocess.Popen(
            command, cwd=common.ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_worker_ready(process: subprocess.Popen, name: str, timeout: float = 60.0) -> None:
    """Until the worker answers a ping on the broker (its pool is then up)."""
    from config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker {name} exited with {process.returncode} (see var/bench/worker-{name}.log)")
        with contextlib.suppress(Exception):
            if app.control.ping(destination=[f"{name}@{socket.gethostname()}"], timeout=0.5):
                return
    raise RuntimeError(f"worker {name} did not answer a ping within {timeout} s")


class MemorySampler(threading.Thread):
    """Peak resident memory of a process and its children, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_total = 0  # bytes, the main process plus every pool process at one instant
        self.peak_process = 0  # bytes, the largest single process
        self.cpu: dict[int, tuple[float, float]] = {}  # pid -> (user, system) seconds, last seen
        self._stopping = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stopping.is_set():
            try:
                processes = [root, *root.children(recursive=True)]
                sizes = []
                for process in processes:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        sizes.append(process.memory_info().rss)
                        times = process.cpu_times()
                        self.cpu[process.pid] = (times.user, times.system)
            except psutil.NoSuchProcess:
                break
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_process = max(self.peak_process, max(sizes, default=0))
            self._stopping.wait(self.interval)

    def cpu_seconds(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the worker and its pool processes so far."""
        return sum(u for u, _ in self.cpu.values()), sum(s for _, s in self.cpu.values())

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)
