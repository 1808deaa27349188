"""`kvbm replay --no-data` against an independent reference simulator.

The simulator below is written from the sequential semantics of issue 5 alone (not from the C++): for a
request with sequence hashes h0..h(n-1):
  1. hits = the longest prefix k whose blocks are all cached;
  2. hold those k blocks;
  3. for i = k..n-1: if h_i is cached, hold it; otherwise take one block (a free slot first, else evict
     the least recently released inactive block) and register h_i in it -- if every slot is held, stop
     caching this request;
  4. release the held blocks last block first, each release making the block the most recently released.
Results must agree exactly (integer counters) with `kvbm replay --no-data --g1-blocks N --eviction lru --json`.
"""

import json
import os
import struct
import subprocess
import xml.etree.ElementTree as ET
from collections import OrderedDict

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOONCAKE = os.path.join(REPO, "..", "shared", "traces", "mooncake_conversation_trace.jsonl")


def simulate(requests, capacity, block_tokens):
    """requests: [(hashes, input_tokens)]; capacity: slots, or None for unlimited."""
    if capacity is None:
        capacity = max(1, len({h for hashes, _ in requests for h in hashes}))
    cached = set()              # registered hashes (held or not)
    inactive = OrderedDict()    # registered and unheld, least recently released first
    holders = {}                # hash -> number of holds in the current request
    out = dict(requests=0, blocks_total=0, blocks_hit=0, prefill_tokens_saved=0, input_tokens=0,
               blocks_uncached=0)
    rate_sum, with_blocks = 0.0, 0
    for hashes, input_tokens in requests:
        held = []

        def hold(h):
            if holders.get(h, 0) == 0:
                inactive.pop(h, None)
            holders[h] = holders.get(h, 0) + 1
            held.append(h)

        k = 0
        while k < len(hashes) and hashes[k] in cached:
            k += 1
        for h in hashes[:k]:
            hold(h)
        for i in range(k, len(hashes)):
            h = hashes[i]
            if h in cached:
                hold(h)
                continue
            if len(cached) >= capacity:
                if not inactive:
                    out["blocks_uncached"] += len(hashes) - i
                    break
                victim, _ = inactive.popitem(last=False)
                cached.discard(victim)
            cached.add(h)
            hold(h)
        for h in reversed(held):
            holders[h] -= 1
            if holders[h] == 0:
                del holders[h]
                inactive[h] = None
        out["requests"] += 1
        out["blocks_total"] += len(hashes)
        out["blocks_hit"] += k
        out["input_tokens"] += input_tokens
        out["prefill_tokens_saved"] += min(k * block_tokens, input_tokens)
        if hashes:
            with_blocks += 1
            rate_sum += k / len(hashes)
    out["mean_request_hit_rate"] = rate_sum / with_blocks if with_blocks else 0.0
    out["hit_rate"] = out["blocks_hit"] / out["blocks_total"] if out["blocks_total"] else 0.0
    return out


def read_mooncake(path):
    reqs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                reqs.append((list(o["hash_ids"]), int(o["input_length"])))
    return reqs


def read_tokens(path, block_tokens):
    import xxhash  # Debian's python3-xxhash: independent of kvbm's hashing
    reqs = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            o = json.loads(line)
            toks = o["tokens"]
            salt = o.get("salt", "")
            seed = xxhash.xxh3_64_intdigest(salt.encode(), seed=0) if salt else 0
            hashes, parent = [], None
            for b in range(len(toks) // block_tokens):
                chunk = toks[b * block_tokens:(b + 1) * block_tokens]
                bh = xxhash.xxh3_64_intdigest(struct.pack("<%dI" % len(chunk), *chunk), seed=seed)
                sh = bh if parent is None else xxhash.xxh3_64_intdigest(struct.pack("<QQ", parent, bh), seed=seed)
                hashes.append(sh)
                parent = sh
            reqs.append((hashes, len(toks)))
    return reqs


def kvbm_replay(kvbm_bin, trace, capacity, *extra):
    cmd = [kvbm_bin, "replay", "--trace", trace, "--no-data", "--g1-blocks",
           "unlimited" if capacity is None else str(capacity), "--eviction", "lru", "--json", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def assert_agree(got, want):
    for key in ("requests", "blocks_total", "blocks_hit", "prefill_tokens_saved", "input_tokens", "blocks_uncached"):
        assert got[key] == want[key], key
    assert got["tiers"]["g1"]["hits"] == want["blocks_hit"]
    assert got["hit_rate"] == pytest.approx(want["hit_rate"], rel=1e-8)
    assert got["mean_request_hit_rate"] == pytest.approx(want["mean_request_hit_rate"], rel=1e-8)


@pytest.fixture(scope="module")
def mooncake():
    if not os.path.exists(MOONCAKE):
        pytest.skip("../shared/traces/mooncake_conversation_trace.jsonl is absent")
    return read_mooncake(MOONCAKE)


@pytest.mark.parametrize("capacity", [1000, 5859, 16000, None])
def test_mooncake_matches_reference(kvbm_bin, mooncake, capacity):
    want = simulate(mooncake, capacity, 512)
    got = kvbm_replay(kvbm_bin, MOONCAKE, capacity)
    assert_agree(got, want)
    if capacity is None:
        assert (got["blocks_hit"], got["blocks_total"]) == (105710, 288500)
        assert round(got["hit_rate"] * 100, 2) == 36.64


def gen(kvbm_bin, tmp_path, fmt, preset, seed, requests):
    path = str(tmp_path / f"{preset}_{seed}.{fmt}.jsonl")
    res = subprocess.run([kvbm_bin, "gen", "--preset", preset, "--seed", str(seed), "--requests", str(requests),
                          "--format", fmt, "--out", path], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return path


@pytest.mark.parametrize("preset,seed,capacity", [
    ("default", 1, 200), ("default", 2, 1500), ("session_heavy", 3, 400), ("system_prompt_heavy", 4, 64),
    ("one_off_heavy", 5, 2000), ("default", 6, None),
])
def test_generated_mooncake_matches_reference(kvbm_bin, tmp_path, preset, seed, capacity):
    path = gen(kvbm_bin, tmp_path, "mooncake", preset, seed, 1500)
    want = simulate(read_mooncake(path), capacity, 512)
    assert_agree(kvbm_replay(kvbm_bin, path, capacity), want)


@pytest.mark.parametrize("capacity", [8, 300, None])
def test_generated_tokens_matches_reference(kvbm_bin, tmp_path, capacity):
    pytest.importorskip("xxhash")
    path = gen(kvbm_bin, tmp_path, "tokens", "default", 11, 300)
    want = simulate(read_tokens(path, 16), capacity, 16)
    assert_agree(kvbm_replay(kvbm_bin, path, capacity, "--format", "tokens", "--block-tokens", "16"), want)


def test_sweep_writes_csv_and_well_formed_svg(kvbm_bin, tmp_path):
    path = gen(kvbm_bin, tmp_path, "mooncake", "default", 1, 500)
    csv, svg = str(tmp_path / "s.csv"), str(tmp_path / "s.svg")
    res = subprocess.run([kvbm_bin, "replay", "--trace", path, "--no-data", "--eviction", "lru",
                          "--sweep", "g1=50,200,800", "--out-csv", csv, "--out-svg", svg],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = open(csv).read().strip().splitlines()
    assert len(rows) == 4 and rows[0].startswith("tier,capacity,")
    reqs = read_mooncake(path)
    for row, cap in zip(rows[1:], (50, 200, 800)):
        assert int(row.split(",")[6]) == simulate(reqs, cap, 512)["blocks_hit"]
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 3


@pytest.mark.parametrize("args,flag", [
    (["--g1-blocks", "-5"], "--g1-blocks"), (["--eviction", "fifo"], "--eviction"), (["--scale", "0"], "--scale"),
    (["--timing", "slow"], "--timing"), (["--model", "GPT-9"], "--model"), (["--sweep", "g7=1"], "--sweep"),
    (["--offload", "sometimes"], "--offload"),
])
def test_bad_flags_exit_2_naming_the_flag(kvbm_bin, args, flag):
    res = subprocess.run([kvbm_bin, "replay", "--no-data", *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert flag in res.stderr
