"""`kvbm replay` publishing events (issue 26), checked by an independent subscriber: every BlockStored must
carry len(token_ids) == blocks × block_size (Dynamo's router drops what does not; they were all empty), and
the events.* flags (rank, batch format, NATS) must reach the wire. NATS makes delivery deterministic: the
subscription exists on the server before the replay connects, so nothing is lost to a slow join."""

import shutil
import socket
import subprocess
import time

import msgpack
import pytest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen([shutil.which("nats-server"), "-a", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    pytest.fail("nats-server did not start")
                time.sleep(0.05)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class NatsSubscriber:
    """The NATS text protocol by hand: INFO, CONNECT, SUB, then MSG frames."""

    def __init__(self, port, subject):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        assert self._line().startswith(b"INFO")
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' + f"SUB {subject} 1\r\n".encode()
                          + b"PING\r\n")
        assert self._line() == b"PONG"

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def drain(self):
        """Every payload received up to a PING's answer (the server has delivered all before it)."""
        self.sock.sendall(b"PING\r\n")
        payloads = []
        while True:
            line = self._line()
            if line == b"PONG":
                return payloads
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            assert line.startswith(b"MSG "), line
            size = int(line.split()[-1])
            while len(self.buf) < size + 2:
                self._fill()
            payloads.append(self.buf[:size])
            self.buf = self.buf[size + 2:]


@pytest.fixture
def nats():
    if shutil.which("nats-server") is None:
        pytest.skip("nats-server is not installed")
    server = NatsServer()
    yield server
    server.close()


def run_replay(kvbm_cli, *args):
    return subprocess.run([kvbm_cli, "replay", "--requests", "40", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("data", [True, False])
def test_replay_events_carry_every_token_and_the_flags(kvbm_cli, nats, data):
    sub = NatsSubscriber(nats.port, "kv.test")
    run = run_replay(kvbm_cli, "--events-nats", f"nats://127.0.0.1:{nats.port}", "--set",
                     "events.nats_subject=kv.test", "--events-rank", "2", "--events-format", "map",
                     *([] if data else ["--no-data"]))
    assert run.returncode == 0, run.stderr
    payloads = sub.drain()
    assert payloads
    stored = 0
    for p in payloads:
        batch = msgpack.unpackb(p, raw=False)
        assert isinstance(batch, dict) and set(batch) == {"ts", "events", "data_parallel_rank"}, batch
        assert batch["data_parallel_rank"] == 2
        for e in batch["events"]:
            if e["type"] != "BlockStored":
                continue
            stored += 1
            assert e["block_size"] > 0
            assert len(e["token_ids"]) == len(e["block_hashes"]) * e["block_size"], e
            assert all(type(t) is int and 0 <= t < 2**32 for t in e["token_ids"])
    assert stored > 0


def test_replay_event_flag_errors_are_one_line(kvbm_cli):
    cases = [
        (["--events", "ipc:///tmp/kvbm-replay-events", "--events-rank", "1"],
         "an ipc:// endpoint cannot take a data-parallel rank"),
        (["--events", "tcp://127.0.0.1:1", "--events-format", "tuple"],
         "--events-format: events.batch_format must be one of array, map, got 'tuple'"),
        (["--events", "tcp://127.0.0.1:1", "--events-rank", "x"],
         "--events-rank: events.data_parallel_rank must be none or an integer in [0, 65535], got 'x'"),
        (["--events-replay", "tcp://127.0.0.1:*"], "events.replay_endpoint \"tcp://127.0.0.1:*\" needs events.endpoint"),
    ]
    for args, message in cases:
        run = run_replay(kvbm_cli, *args)
        assert run.returncode == 2, (args, run.stdout)
        assert message in run.stderr, (args, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
