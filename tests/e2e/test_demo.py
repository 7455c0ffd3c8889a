"""`make demo` (`interlock dev --demo`) as a newcomer runs it: the command it
prints splits requests between the two demo backends by the route's weights,
on the first run and on a second run over the same state, and Ctrl-C stops
everything it started."""
import os
import queue
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.service.test_cli import free_port, interlock_script

pytestmark = pytest.mark.slow

WEIGHTS = re.compile(r"by the weights (\d+)/(\d+)")


class Demo:
    def __init__(self, state: Path):
        self.proxy_port = free_port()
        environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "NOTICE_BUS")}
        environment["INTERLOCK_STATE_DIR"] = str(state)
        self.process = subprocess.Popen(
            [interlock_script(), "dev", "--demo", "--port", str(free_port()), "--xds-port", str(free_port()),
             "--proxy-port", str(self.proxy_port)],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_command(self, timeout=60.0) -> tuple[str, tuple[int, int]]:
        """The printed command and the weights the demo says it splits by."""
        weights = None
        while True:
            line = self._lines.get(timeout=timeout)
            assert line is not None, "the demo exited:\n" + "".join(self.output)
            self.output.append(line)
            if match := WEIGHTS.search(line):
                weights = int(match[1]), int(match[2])
            if line.startswith("  for i in"):
                assert weights, "".join(self.output)
                return line.strip(), weights

    def children(self) -> list[int]:
        pid = self.process.pid
        return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]

    def interrupt(self, timeout=20.0) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def run_demo(tmp_path):
    started = []

    def run() -> Demo:
        started.append(Demo(tmp_path / "state"))
        return started[-1]

    yield run
    for demo in started:
        demo.kill()


def counts(output: str) -> dict[str, int]:
    """`uniq -c` lines of `"backend": "<name>"` -> {name: count}."""
    found = re.findall(r'^\s*(\d+) "backend": "([^"]+)"$', output, re.MULTILINE)
    return {name: int(count) for count, name in found}


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_printed_command_shows_the_split_by_weights_and_ctrl_c_stops_everything(run_demo):
    seen_weights = []
    for _ in range(2):  # the second run, on the same state and new ports, flips the canary weights
        demo = run_demo()
        command, (v1, v2) = demo.wait_for_command()
        seen_weights.append((v1, v2))
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        split = counts(result.stdout)
        assert sum(split.values()) == 100, result.stdout
        # 100 draws: the binomial's standard deviation is at most 5.
        assert abs(split.get("shop-v1", 0) - v1) <= 15, (split, (v1, v2))
        assert abs(split.get("shop-v2", 0) - v2) <= 15, (split, (v1, v2))

        envoys = demo.children()
        assert envoys, "the demo runs Envoy as its child"
        assert demo.interrupt() == 0, "".join(demo.output)
        assert not listening(demo.proxy_port)
        assert not [pid for pid in envoys if Path(f"/proc/{pid}").exists()]
    assert seen_weights == [(50, 50), (90, 10)]
