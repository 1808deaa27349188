"""An independent subscriber (python3-zmq, python3-msgpack) checking kvbm's ZMQ event stream against
specs/kv-events-wire-format.md: frames, sequence numbers, every field and type of every event, the
data-parallel port offset and the replay protocol. The publisher is kvbm_zmq_fixture (see its header
for the known batches it publishes)."""

import json
import re
import socket
import subprocess
import threading
import time

import msgpack
import pytest
import zmq

END_SEQ = b"\xff" * 8
U63 = 2**63
U64_MAX = 2**64 - 1
STORED_KEYS = {"type", "block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium",
               "lora_name"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local(endpoint):
    return endpoint.replace("0.0.0.0", "127.0.0.1")


class Fixture:
    def __init__(self, path, endpoint, replay=None, topic=None, rank=None):
        args = [path, "--endpoint", endpoint]
        if replay:
            args += ["--replay", replay]
        if topic is not None:
            args += ["--topic", topic]
        if rank is not None:
            args += ["--rank", str(rank)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line, f"fixture exited: {self.proc.wait()}"
        self.info = json.loads(line)

    def command(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def publish(self):
        self.command("publish")
        words = self.proc.stdout.readline().split()
        assert words[0] == "published", words
        return int(words[1]), int(words[2])

    def close(self):
        if self.proc.poll() is None:
            self.command("quit")
            self.proc.stdin.close()
            assert self.proc.wait(timeout=20) == 0


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def subscribe(ctx, endpoint, topic=b""):
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, topic)
    sub.connect(local(endpoint))
    return sub


def wait_live(fx, sub):
    """Pings until the subscription is live, then drains the pings."""
    for _ in range(300):
        fx.command("ping")
        if sub.poll(50):
            while sub.poll(300):
                sub.recv_multipart()
            return
    pytest.fail("the subscription never became live")


def recv(sub, timeout_ms=5000):
    assert sub.poll(timeout_ms), "no message"
    return sub.recv_multipart()


def replay(ctx, endpoint, start):
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(local(endpoint))
    dealer.send_multipart([b"", start.to_bytes(8, "big")])
    out = []
    while True:
        assert dealer.poll(5000), "replay answer incomplete"
        frames = dealer.recv_multipart()
        assert len(frames) == 3 and frames[0] == b"", frames
        assert len(frames[1]) == 8
        if frames[1] == END_SEQ:
            assert frames[2] == b""
            break
        out.append((int.from_bytes(frames[1], "big"), frames[2]))
    dealer.close(linger=0)
    return out


def check_int_list(values):
    assert isinstance(values, list)
    for v in values:
        assert type(v) is int and 0 <= v <= U64_MAX, v


def check_known_batches(batches, rank):
    """batches: the five decoded payloads of the fixture's `publish`, in order."""
    assert len(batches) == 5
    for b in batches:
        assert isinstance(b, list) and len(b) == 3
        ts, events, dp = b
        assert isinstance(ts, float)
        assert abs(ts - time.time()) < 600
        assert isinstance(events, list)
        assert dp == rank and (dp is None or type(dp) is int)
        for e in events:
            assert isinstance(e, dict) and isinstance(e["type"], str)

    (s1,), (s2,), (r3, r4), (c,), (s5,) = (b[1] for b in batches)
    assert set(s1) == STORED_KEYS
    assert s1["type"] == "BlockStored"
    assert s1["block_hashes"] == [1, U63, U64_MAX]
    check_int_list(s1["block_hashes"])
    assert s1["parent_block_hash"] is None
    assert s1["token_ids"] == list(range(12))
    assert len(s1["token_ids"]) == len(s1["block_hashes"]) * s1["block_size"]
    assert s1["block_size"] == 4 and type(s1["block_size"]) is int
    assert s1["lora_id"] is None
    assert s1["medium"] == "GPU"
    assert s1["lora_name"] is None

    assert set(s2) == STORED_KEYS
    assert s2["block_hashes"] == [0x123456789ABCDEF0]
    assert s2["parent_block_hash"] == U64_MAX
    assert s2["token_ids"] == [100, 101, 102, 103]
    assert s2["medium"] == "CPU"

    assert r3 == {"type": "BlockRemoved", "block_hashes": [U63], "medium": "DISK"}
    assert r4 == {"type": "BlockRemoved", "block_hashes": [5, 6], "medium": "REMOTE"}
    assert c == {"type": "AllBlocksCleared"}

    assert set(s5) == STORED_KEYS
    assert s5["block_hashes"] == [7] and s5["parent_block_hash"] == 1
    assert s5["token_ids"] == list(range(200, 216)) and s5["block_size"] == 16
    for s in (s1, s2, s5):  # the rule Dynamo's router enforces
        assert len(s["token_ids"]) == len(s["block_hashes"]) * s["block_size"]
    assert s5["medium"] is None and s5["lora_id"] is None and s5["lora_name"] == "adapter-x"


def test_live_stream_with_topic_rank_and_port_offset(fixture_bin, ctx):
    pub_port, replay_port = free_port(), free_port()
    fx = Fixture(fixture_bin, f"tcp://*:{pub_port - 1}", replay=f"tcp://*:{replay_port - 1}", topic="kv-topic",
                 rank=1)
    try:
        # Rank 1: both ports offset by one.
        assert fx.info["endpoint"].endswith(f":{pub_port}")
        assert fx.info["replay_endpoint"].endswith(f":{replay_port}")
        sub = subscribe(ctx, fx.info["endpoint"], b"kv-topic")
        wait_live(fx, sub)
        first, count = fx.publish()
        assert count == 5
        payloads = []
        for i in range(count):
            frames = recv(sub)
            assert len(frames) == 3
            topic, seq, payload = frames
            assert topic == b"kv-topic"
            assert len(seq) == 8 and int.from_bytes(seq, "big") == first + i
            payloads.append(payload)
        # Hashes >= 2^63 are msgpack uint64 (0xcf), never negative int64 (0xd3).
        assert b"\xcf\x80\x00\x00\x00\x00\x00\x00\x00" in payloads[0]
        # No integer anywhere decodes negative (a byte-substring test for 0xd3 would also match inside the
        # float64 timestamp's bytes).
        def all_ints(x):
            if isinstance(x, bool):
                return
            if isinstance(x, int):
                yield x
            elif isinstance(x, (list, tuple)):
                for y in x:
                    yield from all_ints(y)
            elif isinstance(x, dict):
                for k, v in x.items():
                    yield from all_ints(k)
                    yield from all_ints(v)

        assert all(v >= 0 for v in all_ints(msgpack.unpackb(payloads[0], raw=False)))
        check_known_batches([msgpack.unpackb(p, raw=False) for p in payloads], rank=1)

        # Replay from `first`: exactly the five batches, byte for byte, then -1.
        got = replay(ctx, fx.info["replay_endpoint"], first)
        assert [s for s, _ in got] == list(range(first, first + 5))
        assert [p for _, p in got] == payloads
        got = replay(ctx, fx.info["replay_endpoint"], first + 3)
        assert [s for s, _ in got] == [first + 3, first + 4]
        assert replay(ctx, fx.info["replay_endpoint"], first + 100) == []
    finally:
        fx.close()


def test_defaults_empty_topic_and_nil_rank(fixture_bin, ctx):
    fx = Fixture(fixture_bin, "tcp://127.0.0.1:*")
    try:
        assert fx.info["replay_endpoint"] == ""
        sub = subscribe(ctx, fx.info["endpoint"])
        wait_live(fx, sub)
        first, count = fx.publish()
        frames = [recv(sub) for _ in range(count)]
        assert all(f[0] == b"" for f in frames)
        assert [int.from_bytes(f[1], "big") for f in frames] == list(range(first, first + count))
        check_known_batches([msgpack.unpackb(f[2], raw=False) for f in frames], rank=None)
    finally:
        fx.close()


def test_late_joiner_recovers_everything_through_replay(fixture_bin, ctx):
    fx = Fixture(fixture_bin, "tcp://127.0.0.1:*", replay="tcp://127.0.0.1:*")
    try:
        first, count = fx.publish()  # nobody is subscribed: these go nowhere live
        assert first == 0 and count == 5
        sub = subscribe(ctx, fx.info["endpoint"])
        wait_live(fx, sub)
        fx.command("ping")
        live_seq = int.from_bytes(recv(sub)[1], "big")
        got = replay(ctx, fx.info["replay_endpoint"], 0)
        seqs = [s for s, _ in got]
        # Everything, contiguous from 0, at least up to the live batch (a ping delayed past the drain in
        # wait_live may make live_seq an earlier ping's number on a loaded machine).
        assert seqs == list(range(0, len(seqs))) and seqs[-1] >= live_seq
        check_known_batches([msgpack.unpackb(p, raw=False) for _, p in got[:5]], rank=None)
        for _, p in got[5:]:
            assert msgpack.unpackb(p, raw=False)[1] == [{"type": "AllBlocksCleared"}]
    finally:
        fx.close()


def test_kvbm_events_tail_prints_the_stream(fixture_bin, kvbm_cli):
    fx = Fixture(fixture_bin, "tcp://127.0.0.1:*", replay="tcp://127.0.0.1:*")
    try:
        fx.publish()
        tail = subprocess.Popen([kvbm_cli, "events", "tail", fx.info["endpoint"], "--replay",
                                 fx.info["replay_endpoint"], "--from-seq", "0", "--count", "6",
                                 "--timeout-ms", "10000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = tail.communicate(timeout=30)
        assert tail.returncode == 0, err
        lines = out.splitlines()
        assert len(lines) == 6, out
        assert lines[0].startswith("seq=0 BlockStored medium=GPU hashes=[0x0000000000000001,0x8000000000000000,"
                                   "0xffffffffffffffff]")
        assert "parent=- block_size=4 tokens=12" in lines[0]
        assert "parent=0xffffffffffffffff" in lines[1] and "medium=CPU" in lines[1]
        assert lines[2].startswith("seq=2 BlockRemoved medium=DISK")
        assert lines[3].startswith("seq=2 BlockRemoved medium=REMOTE")
        assert lines[4] == "seq=3 AllBlocksCleared"
        assert "lora=adapter-x" in lines[5] and "medium=-" in lines[5]
    finally:
        fx.close()


class HttpServer:
    """A TCP server that speaks HTTP, not ZMTP: each connection gets a 400 answer and is closed, either
    after reading what the peer sent first or at once. libzmq takes such a peer for a ZMTP 1.0 one."""

    def __init__(self, answer_first):
        self.answer_first = answer_first
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self):
        body = b"<html><body>400 Bad Request</body></html>\n"
        answer = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % len(body)) + body
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.connections += 1
            with conn:
                try:
                    conn.settimeout(2)
                    if not self.answer_first:
                        conn.recv(65536)
                    conn.sendall(answer)
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.mark.parametrize("answer_first", [False, True])
def test_replay_publishing_toward_an_http_server_exits_cleanly(kvbm_cli, answer_first):
    # libzmq 4.3.4 aborted the process (zmtp_engine.cpp:463) in every run here when closing a connecting PUB
    # that had batches queued for this peer.
    server = HttpServer(answer_first)
    try:
        for _ in range(5):
            run = subprocess.run([kvbm_cli, "replay", "--events", f"tcp://127.0.0.1:{server.port}", "--requests", "3"],
                                 capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stderr
            assert re.search(r"events\s+\d+ sent", run.stdout), run.stdout
        assert server.connections > 0
    finally:
        server.close()


def test_replay_refuses_an_events_host_that_cannot_resolve(kvbm_cli):
    run = subprocess.run([kvbm_cli, "replay", "--events", "tcp://999.0.0.1:1", "--requests", "3"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout
    assert "--events" in run.stderr and '"999.0.0.1"' in run.stderr and len(run.stderr.splitlines()) == 1
    assert "sent" not in run.stdout
