"""kvbm's decoder (`kvbm events decode`) against payloads built here with python3-msgpack, straight from
specs/kv-events-wire-format.md and independently of the C++ encoder: the three batch shapes (A: array batch
with tagged-array events, B: array batch with map events, C: map batch), unknown keys and extra positions,
signed and unsigned hashes, and the refusals (bin hashes, token_ids that are not blocks × block_size)."""

import subprocess

import msgpack
import pytest

U63 = 2**63
U64_MAX = 2**64 - 1
TS = 1718000000.25


def stored_map(hashes, tokens, block_size, parent=None, medium="GPU", **extra):
    event = {"type": "BlockStored", "block_hashes": hashes, "parent_block_hash": parent, "token_ids": tokens,
             "block_size": block_size, "lora_id": None, "medium": medium, "lora_name": None}
    event.update(extra)
    return event


def stored_array(hashes, tokens, block_size, parent=None, medium="GPU", *extra):
    return ["BlockStored", hashes, parent, tokens, block_size, None, medium, None, *extra]


def events_map():
    return [
        stored_map([1, U63, U64_MAX], list(range(12)), 4),
        # A newer vLLM's optional keys and a key no version has yet: ignored.
        stored_map([-1], [7] * 4, 4, parent=5, medium="CPU", extra_keys=[None], group_idx=0,
                   kv_cache_spec_kind="full_attention", kv_cache_spec_sliding_window=None, future_key={"a": 1}),
        {"type": "BlockRemoved", "block_hashes": [U63, -2], "medium": "DISK", "group_idx": 0},
        {"type": "AllBlocksCleared"},
    ]


def events_array():
    return [
        stored_array([1, U63, U64_MAX], list(range(12)), 4),
        stored_array([-1], [7] * 4, 4, 5, "CPU", [None], 0, "full_attention"),  # extra positions ignored
        ["BlockRemoved", [U63, -2], "DISK", 0],
        ["AllBlocksCleared"],
    ]


EXPECTED_EVENTS = [
    "seq=0 BlockStored medium=GPU hashes=[0x0000000000000001,0x8000000000000000,0xffffffffffffffff] n=3 "
    "parent=- block_size=4 tokens=12 lora=-",
    "seq=0 BlockStored medium=CPU hashes=[0xffffffffffffffff] n=1 parent=0x0000000000000005 block_size=4 "
    "tokens=4 lora=-",
    "seq=0 BlockRemoved medium=DISK hashes=[0x8000000000000000,0xfffffffffffffffe] n=2",
    "seq=0 AllBlocksCleared",
]


def decode(kvbm_cli, tmp_path, batch):
    path = tmp_path / "payload.msgpack"
    path.write_bytes(msgpack.packb(batch, use_bin_type=True))
    return subprocess.run([kvbm_cli, "events", "decode", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("shape,batch,rank", [
    ("A", [TS, events_array(), 3], "3"),
    ("A without rank", [TS, events_array()], "-"),
    ("B", [TS, events_map(), 3], "3"),
    ("B nil rank, extra positions", [TS, events_map(), None, "future", 1], "-"),
    ("C", {"ts": TS, "events": events_map(), "data_parallel_rank": 3}, "3"),
    ("C rank omitted, unknown key", {"events": events_map(), "ts": TS, "future": [1, 2]}, "-"),
    ("C integer ts", {"ts": 1718000000, "events": events_map()}, "-"),
])
def test_every_shape_decodes(kvbm_cli, tmp_path, shape, batch, rank):
    r = decode(kvbm_cli, tmp_path, batch)
    assert r.returncode == 0, (shape, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("batch ts=1718000000.") and lines[0].endswith(f" rank={rank} events=4"), lines[0]
    assert lines[1:] == EXPECTED_EVENTS, shape


@pytest.mark.parametrize("name,batch,message", [
    ("bin hash", [TS, [{"type": "BlockRemoved", "block_hashes": [b"\x01" * 32], "medium": "GPU"}], None],
     "events[0].block_hashes[0]: 32-byte bin hash: kvbm reads 64-bit integer block hashes only"),
    ("bin parent", {"ts": TS, "events": [stored_map([1], [0] * 4, 4, parent=b"\x02" * 32)]},
     "events[0].parent_block_hash: 32-byte bin hash"),
    ("short tokens", [TS, [stored_map([1, 2], [1, 2, 3], 4)], None],
     "events[0]: BlockStored has 3 token_ids for 2 block(s) × block_size 4, expected 8"),
    ("no tokens, shape A", [TS, [stored_array([1], [], 16)], None],
     "events[0]: BlockStored has 0 token_ids for 1 block(s) × block_size 16, expected 16"),
    ("long tokens, shape C", {"ts": TS, "events": [stored_map([1], [0] * 5, 4)]},
     "BlockStored has 5 token_ids for 1 block(s) × block_size 4, expected 4"),
    ("map batch without events", {"ts": TS}, "batch: map without \"events\""),
    ("not a batch", "hello", "batch: expected array [ts, events, data_parallel_rank] or map"),
])
def test_refusals_name_the_problem(kvbm_cli, tmp_path, name, batch, message):
    r = decode(kvbm_cli, tmp_path, batch)
    assert r.returncode == 2, (name, r.stdout)
    assert message in r.stderr, (name, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
