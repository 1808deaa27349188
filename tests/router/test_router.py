"""`kvbm router` (issue 26 item 5): three `kvbm replay` workers publish different generated traces on tcp
loopback; a router subscribed to all three must answer /v1/match exactly as a brute-force model of what each
worker holds, built here from an independent subscriber (python3-zmq + msgpack, with the same replay on a
gap). A worker that restarts on its endpoint (a new publisher, numbering from 0 again) is re-synchronised:
the router forgets what the old one held. Bad --worker / --listen: exit 2 naming the flag."""

import json
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import msgpack
import pytest
import zmq

MEDIA = ["GPU", "CPU", "DISK", "REMOTE"]
WEIGHTS = [1.0, 0.5, 0.25, 0.1]
REPLAY_END = 2**64 - 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ModelSubscriber:
    """What every worker holds: hash -> set of media, per worker. Live SUB plus the replay DEALER on a gap,
    and a restart (a live number not above the previous live one) clears the worker, as the router does."""

    def __init__(self, workers):
        self.ctx = zmq.Context()
        self.workers = workers  # name -> (pub endpoint, replay endpoint)
        self.held = {name: {} for name in workers}
        self.expected = {name: 0 for name in workers}
        self.last_live = {name: None for name in workers}
        self.last_seq = {name: None for name in workers}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in workers]
        self.subs = {}
        for name, (pub, _) in workers.items():
            sub = self.ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(pub)
            self.subs[name] = sub
        for t in self.threads:
            t.start()

    def _apply(self, name, seq, payload):
        batch = msgpack.unpackb(payload, raw=False)
        events = batch["events"] if isinstance(batch, dict) else batch[1]
        held = self.held[name]
        with self.lock:
            for e in events:
                kind = e["type"]
                if kind == "AllBlocksCleared":
                    held.clear()
                    continue
                medium = e.get("medium") or "GPU"
                for h in e["block_hashes"]:
                    if kind == "BlockStored":
                        held.setdefault(h, set()).add(medium)
                    elif h in held:
                        held[h].discard(medium)
                        if not held[h]:
                            del held[h]
            self.last_seq[name] = seq

    def _replay(self, name, start):
        dealer = self.ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(self.workers[name][1])
        dealer.send_multipart([b"", struct.pack(">Q", start)])
        got = []
        while dealer.poll(5000):
            _, seq_bytes, payload = dealer.recv_multipart()
            seq = struct.unpack(">Q", seq_bytes)[0]
            if seq == REPLAY_END:
                break
            got.append((seq, payload))
        dealer.close()
        return got

    def _run(self, name):
        sub = self.subs[name]
        while not self.stop.is_set():
            if not sub.poll(50):
                continue
            _, seq_bytes, payload = sub.recv_multipart()
            seq = struct.unpack(">Q", seq_bytes)[0]
            if self.last_live[name] is not None and seq <= self.last_live[name]:
                with self.lock:
                    self.held[name].clear()
                self.expected[name] = 0
            self.last_live[name] = seq
            if seq < self.expected[name]:
                continue
            if seq > self.expected[name]:
                for rseq, rpayload in self._replay(name, self.expected[name]):
                    if rseq >= self.expected[name] and rseq < seq:
                        assert rseq == self.expected[name], f"{name}: replay skipped {self.expected[name]}..{rseq}"
                        self._apply(name, rseq, rpayload)
                        self.expected[name] = rseq + 1
                assert self.expected[name] == seq, f"{name}: batches {self.expected[name]}..{seq - 1} lost"
            self._apply(name, seq, payload)
            self.expected[name] = seq + 1

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        for s in self.subs.values():
            s.close()
        self.ctx.term()


def brute_force(held_by_worker, names, hashes):
    """The expected /v1/match answer, block by block, from the model."""
    workers = []
    for name in names:
        held = held_by_worker[name]
        matched = 0
        on = [0] * 4
        alive = set(range(4))
        for i, h in enumerate(hashes):
            if h not in held:
                break
            matched = i + 1
            alive &= {MEDIA.index(m) for m in held[h]}
            for level in alive:
                on[level] = i + 1
        score = 0.0
        counted = 0
        for level in sorted(range(4), key=lambda l: -WEIGHTS[l]):
            upto = min(on[level], matched)
            if upto > counted:
                score += WEIGHTS[level] * (upto - counted)
                counted = upto
        score += min(WEIGHTS) * (matched - counted)
        workers.append({"name": name, "matched_blocks": matched, "by_medium": dict(zip(MEDIA, on)), "score": score})
    best = None
    for w in workers:
        if w["matched_blocks"] == 0:
            continue
        if best is None or w["score"] > best["score"] or (
                w["score"] == best["score"] and w["matched_blocks"] > best["matched_blocks"]):
            best = w
    return {"workers": workers, "best": best["name"] if best else None}


def http(port, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class RouterProc:
    def __init__(self, kvbm_cli, workers):
        args = [kvbm_cli, "router", "--listen", "127.0.0.1:0"]
        for name, (pub, replay) in workers.items():
            args += ["--worker", f"{name}={pub},{replay}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("router listening on "), (line, self.proc.stderr.read() if self.proc.poll() else "")
        self.port = int(line.rsplit(":", 1)[1])

    def workers(self):
        status, body = http(self.port, "/v1/workers")
        assert status == 200
        return {w["name"]: w for w in json.loads(body)["workers"]}

    def close(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=20) == 0


def start_worker(kvbm_cli, tmp_path, name, endpoints, seed, g1_blocks, trace_format="mooncake"):
    trace = tmp_path / f"{name}-{seed}.jsonl"
    gen = subprocess.run([kvbm_cli, "gen", "--seed", str(seed), "--requests", "60", "--rate", "30",
                          "--format", trace_format, "--out", str(trace)], capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    pub, replay = endpoints
    # --timing trace: the replay lasts about two seconds, so both subscribers join while it runs; what they
    # miss of its start they fetch from the replay socket.
    return subprocess.Popen([kvbm_cli, "replay", "--trace", str(trace), "--timing", "trace", "--no-data",
                             "--g1-blocks", str(g1_blocks), "--g2-blocks", str(g1_blocks // 2), "--offload",
                             "write_back", "--events", pub.replace("127.0.0.1", "*"), "--events-replay",
                             replay.replace("127.0.0.1", "*")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_in_step(router, model, names, timeout=30):
    """Until the router has applied the last batch the model has (both saw every batch in order)."""
    deadline = time.monotonic() + timeout
    while True:
        state = router.workers()
        if all(state[n]["last_seq"] == model.last_seq[n] and model.last_seq[n] is not None for n in names):
            return state
        assert time.monotonic() < deadline, (state, model.last_seq)
        time.sleep(0.1)


def check_answers(router, model, names):
    queries = 0
    with model.lock:
        held = {n: dict(model.held[n]) for n in names}
    # Query with chains the workers published: every held hash's prefix is what a request would send; use
    # each stored hash alone and the held hashes in model order (prefixes of published chains).
    samples = []
    for n in names:
        hashes = list(held[n])
        samples += [[h] for h in hashes[:40]]
        samples.append(hashes[:64])
    samples.append([12345, 67890])
    for hashes in samples:
        status, body = http(router.port, "/v1/match", {"block_hashes": hashes})
        assert status == 200, body
        got = json.loads(body)
        want = brute_force(held, names, hashes)
        for g, w in zip(got["workers"], want["workers"]):
            assert g["score"] == pytest.approx(w["score"])
            g.pop("score"), w.pop("score")
        assert got == want, hashes
        queries += 1
    return queries


def test_router_matches_a_brute_force_model_and_resyncs_a_restart(kvbm_cli, tmp_path):
    names = ["w0", "w1", "w2"]
    endpoints = {n: (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}") for n in names}
    model = ModelSubscriber(endpoints)
    router = RouterProc(kvbm_cli, endpoints)
    try:
        workers = [start_worker(kvbm_cli, tmp_path, n, endpoints[n], seed, 400 + 100 * i)
                   for i, (n, seed) in enumerate(zip(names, [11, 22, 33]))]
        for w in workers:
            _, err = w.communicate(timeout=120)
            assert w.returncode == 0, err
        state = wait_in_step(router, model, names)
        assert all(state[n]["lost"] == 0 for n in names), state
        assert all(model.held[n] for n in names)
        assert check_answers(router, model, names) > 3

        # w0 restarts on the same endpoints with another trace: the router must drop what it held before.
        before = dict(model.held["w0"])
        w = start_worker(kvbm_cli, tmp_path, "w0", endpoints["w0"], 44, 300)
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        state = wait_in_step(router, model, names)
        assert state["w0"]["resyncs"] >= 1, state
        gone = [h for h in before if h not in model.held["w0"]]
        assert gone, "the restarted worker holds everything the old one did: the test shows nothing"
        status, body = http(router.port, "/v1/match", {"block_hashes": gone[:1]})
        assert json.loads(body)["workers"][0]["matched_blocks"] == 0
        check_answers(router, model, names)
        status, body = http(router.port, "/metrics")
        assert status == 200 and 'kvbm_router_resyncs_total{worker="w0"}' in body
    finally:
        router.close()
        model.close()


def test_router_tokens_query_matches_a_token_trace_worker(kvbm_cli, tmp_path):
    """A worker replaying a token-level trace hashes the trace's tokens (its events carry synthesized tokens,
    README "Events"): the router hashing a request's tokens must answer as a query by the sequence hashes
    `kvbm hash` computes for them, and both as the brute-force model of what the worker holds."""
    endpoints = {"w0": (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")}
    model = ModelSubscriber(endpoints)
    router = RouterProc(kvbm_cli, endpoints)
    try:
        w = start_worker(kvbm_cli, tmp_path, "w0", endpoints["w0"], 5, 100000, trace_format="tokens")
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        wait_in_step(router, model, ["w0"])
        matched = 0
        with open(tmp_path / "w0-5.jsonl") as f:
            requests = [json.loads(line)["tokens"] for line in f][:10]
        for tokens in requests:
            tokens = tokens[:16 * 64]
            run = subprocess.run([kvbm_cli, "hash", "--block-size", "16", *map(str, tokens)], capture_output=True,
                                 text=True, timeout=30)
            assert run.returncode == 0, run.stderr
            hashes = [int(line.split()[1]) for line in run.stdout.splitlines()]
            by_tokens = json.loads(http(router.port, "/v1/match", {"tokens": tokens, "block_size": 16})[1])
            by_hashes = json.loads(http(router.port, "/v1/match", {"block_hashes": hashes})[1])
            assert by_tokens == by_hashes, (by_tokens, by_hashes)
            want = brute_force(model.held, ["w0"], hashes)
            assert by_tokens["workers"][0]["matched_blocks"] == want["workers"][0]["matched_blocks"]
            matched += by_tokens["workers"][0]["matched_blocks"]
        assert matched > 0, "no request's prefix is held: the test shows nothing"
    finally:
        router.close()
        model.close()


def test_router_tokens_query_hashes_like_the_workers(kvbm_cli):
    """The tokens path: sequence hashes of tokens as `kvbm hash` computes them (DESIGN.md §1)."""
    port = free_port()
    router = RouterProc(kvbm_cli, {"w0": (f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{free_port()}")})
    try:
        status, body = http(router.port, "/v1/match", {"tokens": list(range(40)), "block_size": 16})
        assert status == 200, body
        assert json.loads(body) == {"workers": [{"name": "w0", "matched_blocks": 0, "by_medium": dict.fromkeys(
            MEDIA, 0), "score": 0}], "best": None}
        for bad, message in [({"tokens": [1, 2]}, "needs \"block_size\""),
                             ({"block_hashes": [1], "tokens": [1]}, "exactly one"),
                             ({"block_hashes": [-1]}, "entries must be integers"),
                             ({"blocks": []}, "unknown field \"blocks\"")]:
            status, body = http(router.port, "/v1/match", bad)
            assert status == 400 and message in json.loads(body)["error"], (bad, body)
    finally:
        router.close()


@pytest.mark.parametrize("args,message", [
    (["--worker", "w0"], "--worker: expected NAME=ENDPOINT"),
    (["--worker", "w0=http://x"], "--worker: expected NAME=ENDPOINT"),
    (["--worker", "a=tcp://127.0.0.1:1", "--worker", "a=tcp://127.0.0.1:2"], "--worker: the name 'a' is given twice"),
    (["--worker", "a=tcp://127.0.0.1:1", "--listen", "127.0.0.1"], "--listen: expected HOST:PORT"),
    (["--worker", "a=tcp://127.0.0.1:1", "--listen", "127.0.0.1:70000"], "--listen: expected HOST:PORT"),
    (["--worker", "a=tcp://127.0.0.1:1", "--weights", "1,2"], "--weights: expected GPU,CPU,DISK,REMOTE"),
])
def test_router_bad_flags_exit_2_naming_the_flag(kvbm_cli, args, message):
    run = subprocess.run([kvbm_cli, "router", *args], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2, run
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
