"""The health workers as an operator runs them, for tests: `interlock worker`
and `interlock beat` subprocesses sharing the test's database, broker and
notice channel, each logging to a file the test can read, all stopped at the end."""
import datetime
import os
import signal
import subprocess
import time
from pathlib import Path

from django.utils import timezone

from tests.service.test_cli import interlock_script
from tests.service.xds.test_cli_xds import database_url
from workers.tasks import send_probe_batch

ROOT = Path(__file__).resolve().parents[2]
# Every wait on these processes ends by this deadline.
WAIT_SEC = 15


class Process:
    """An `interlock` subprocess whose output goes to a log file the test can read."""

    def __init__(self, args: list[str], env: dict, log: Path):
        self.log = log
        with open(log, "w") as out:
            self.popen = subprocess.Popen([interlock_script(), *args], env=env,
                                          cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for_line(self, fragment: str):
        eventually(lambda: fragment in self.text(), f"{fragment!r} in {self.log.name}", self)

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=WAIT_SEC)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def eventually(condition, what: str, *processes: Process, timeout: float = WAIT_SEC):
    """Waits for condition() (failing at once if one of `processes` exits)."""
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            assert process.popen.poll() is None, f"{process.log.name} exited:\n{process.text()[-3000:]}"
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


class Interlock:
    """Starts `interlock ARGS...` subprocesses (stop_all() stops them) with the
    test's database, broker and notice channel, loopback probes allowed, and
    `env` on top."""

    def __init__(self, settings, logs: Path, **env: str):
        self.env = {**os.environ, "DATABASE_URL": database_url(settings),
                    "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "NOTICE_CHANNEL": settings.NOTICE_CHANNEL,
                    "PROBE_ALLOW_LOOPBACK": "1", "HEALTH_BEAT_LOCK_TTL_SEC": "3", "PYTHONPATH": str(ROOT), **env}
        self.logs = logs
        self.started: list[Process] = []

    def __call__(self, *args: str, name: str) -> Process:
        process = Process(list(args), self.env, self.logs / f"{name}.log")
        self.started.append(process)
        return process

    def worker(self, region: str, name: str = "") -> Process:
        """A worker of `region`, started and ready."""
        worker = self("worker", "--region", region, "--concurrency", "1", name=name or f"worker-{region}")
        worker.wait_for_line("ready.")
        return worker

    def stop_all(self):
        for process in self.started:
            process.stop()


def send_round(check, region: str, endpoints, round_at=None):
    """One probe round of `endpoints` sent to `region`'s queue, as the beat sends it; its round time."""
    round_at = round_at or timezone.now()
    send_probe_batch(check.pk, region, [e.pk for e in endpoints], round_at, round_at + datetime.timedelta(seconds=30))
    return round_at
