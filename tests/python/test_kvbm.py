"""Tests of the kvbm Python module (issue 6/8).

Run: PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python
(ctest runs this as python_bindings_test, label python.)
"""

from __future__ import annotations

import gc
import pathlib
import re
import socket
import struct
import sys
import threading

import numpy as np
import pytest
import xxhash

import kvbm

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python" / "examples"))

PAGE = 4
# One layer, K and V, 4 tokens × 8 float32 per chunk: 128-byte chunks.
SMALL = {"model": {"num_layers": 2, "outer_dim": 2, "page_size": PAGE, "inner_dim": 8, "dtype_bytes": 4},
         "g1": {"num_blocks": 16}}
WITH_G2 = {**SMALL, "g1": {"num_blocks": 8}, "g2": {"num_blocks": 64}}


def xxh3(data: bytes, seed: int = 0) -> int:
    return xxhash.xxh3_64_intdigest(data, seed=seed)


def fill_request(manager, tokens, salt=None):
    """Allocates, fills (apply) and registers the full blocks of `tokens`; returns (seq, ImmutableBlocks)."""
    seq = manager.make_sequence(tokens, salt=salt)
    blocks = manager.allocate(seq.num_full_blocks)
    for block, tb in zip(blocks, seq.blocks()):
        block.apply(tb)
        block.chunk(0, 0, np.uint32)[:] = tb.sequence_hash & 0xFFFFFFFF
    return seq, manager.register_blocks(blocks)


def assert_idle(manager, level="g1"):
    status = manager.status(level)
    assert status["active"] == 0 and status["owned"] == 0, status


# ---- configuration ----

def test_config_from_dict_set_and_toml(tmp_path):
    cfg = kvbm.Config({"model": {"page_size": 8}, "g1": {"num_blocks": 32}, "keep_tokens": True})
    cfg.set("g2.num_blocks", 64)
    cfg.validate()
    assert cfg.model["page_size"] == 8
    assert cfg.tier_blocks("g1") == 32 and cfg.tier_blocks("g2") == 64 and cfg.tier_blocks("g3") == 0
    path = tmp_path / "kvbm.toml"
    path.write_text(cfg.to_toml())
    loaded = kvbm.Config.from_toml_file(str(path))
    assert loaded.to_toml() == cfg.to_toml()
    manager = kvbm.KvBlockManager(path)  # a path works too (str or os.PathLike)
    assert manager.page_size == 8 and manager.has_tier("g2") and not manager.has_tier("g3")
    keys = {k["key"] for k in kvbm.config_keys()}
    assert {"model.page_size", "g1.num_blocks", "offload.g1_to_g2"} <= keys


def test_a_directory_is_not_a_configuration_file(tmp_path):
    # A directory once loaded as an empty file: the defaults, no error.
    with pytest.raises(ValueError, match="is a directory"):
        kvbm.KvBlockManager(tmp_path)
    with pytest.raises(ValueError, match="is a directory"):
        kvbm.Config.from_toml_file(str(tmp_path))


def test_config_errors():
    with pytest.raises(ValueError, match="g1.nope"):
        kvbm.Config({"g1": {"nope": 1}})
    with pytest.raises(ValueError, match="page_size"):
        kvbm.KvBlockManager({"model": {"page_size": 0}})
    with pytest.raises(FileNotFoundError, match="no such file"):
        kvbm.Config.from_toml_file("/nonexistent/kvbm.toml")
    with pytest.raises(TypeError):
        kvbm.KvBlockManager(42)


# ---- hashing and sequences (checked against python3-xxhash) ----

def test_hashing_matches_xxh3():
    tokens = list(range(100, 116))
    salt = kvbm.compute_salt_hash("tenant-a")
    assert salt == xxh3(b"tenant-a")
    assert kvbm.compute_salt_hash("") == 0
    block = kvbm.compute_block_hash(tokens, salt)
    assert block == xxh3(struct.pack("<16I", *tokens), seed=salt)
    assert kvbm.compute_sequence_hash(None, block, salt) == block
    parent = 0x1234_5678_9ABC_DEF0
    assert kvbm.compute_sequence_hash(parent, block, salt) == xxh3(struct.pack("<QQ", parent, block), seed=salt)
    assert kvbm.derive_salt_hash("s", "") == kvbm.compute_salt_hash("s")


def test_token_block_sequence():
    seq = kvbm.TokenBlockSequence(PAGE, list(range(10)), salt="x")
    assert (seq.num_tokens, seq.num_full_blocks, len(seq)) == (10, 2, 10)
    assert list(seq.partial_tokens) == [8, 9]
    salt = kvbm.compute_salt_hash("x")
    b0 = kvbm.compute_block_hash([0, 1, 2, 3], salt)
    b1 = kvbm.compute_block_hash([4, 5, 6, 7], salt)
    assert seq.block_hashes == [b0, b1]
    assert seq.sequence_hashes == [b0, kvbm.compute_sequence_hash(b0, b1, salt)]
    assert seq.block(1).parent == b0 and seq.block(0).parent is None
    assert seq.block(1).tokens == [4, 5, 6, 7]
    seq.append(np.array([10, 11], dtype=np.uint32))
    assert seq.num_full_blocks == 3
    seq.pop(3)
    assert seq.num_full_blocks == 2 and seq.num_tokens == 9
    with pytest.raises(IndexError):
        seq.block(5)
    with pytest.raises(ValueError):
        kvbm.TokenBlockSequence(0)


def test_token_ids_outside_u32_raise_instead_of_wrapping():
    m = kvbm.KvBlockManager(SMALL)
    # Before: 2**32 + i hashed as i, and -1 became 4294967295.
    for bad in ([2**32, 2**32 + 1, 2**32 + 2, 2**32 + 3], [-1, 0, 1, 2], [2**70, 0, 0, 0],
                np.array([0, 1, 2, 2**32], dtype=np.int64), np.array([-1, 0, 0, 0], dtype=np.int32)):
        with pytest.raises(ValueError, match=r"token ids must be in \[0, 4294967295\]"):
            m.make_sequence(bad)
        with pytest.raises(ValueError, match="token ids"):
            kvbm.TokenBlockSequence(PAGE, bad)
        with pytest.raises(ValueError, match="token ids"):
            kvbm.compute_block_hash(bad)
    with pytest.raises(TypeError, match="integers"):
        m.make_sequence([0.5, 1.0, 2.0, 3.0])
    seq = kvbm.TokenBlockSequence(PAGE)
    with pytest.raises(ValueError, match="token ids"):
        seq.append([2**32])
    (b,) = m.allocate(1)
    b.init()
    with pytest.raises(ValueError, match="token ids"):
        b.append([-1])
    b.release()
    # The edges of the range are accepted, as lists and as any integer array.
    top = [0, 1, 2**32 - 2, 2**32 - 1]
    expected = m.make_sequence(np.array(top, dtype=np.uint32)).sequence_hashes
    assert m.make_sequence(top).sequence_hashes == expected
    assert m.make_sequence(np.array(top, dtype=np.int64)).sequence_hashes == expected
    assert m.make_sequence([0, 1, 2, 3]).sequence_hashes != m.make_sequence(top).sequence_hashes


# ---- manager API ----

def test_request_cycle_and_status():
    m = kvbm.KvBlockManager(SMALL)
    assert m.status() == {"active": 0, "inactive": 0, "free": 16, "owned": 0}
    seq, reg = fill_request(m, list(range(12)))
    assert [b.sequence_hash for b in reg] == seq.sequence_hashes
    assert list(reg[1].tokens) == [4, 5, 6, 7]
    assert reg[1].parent == seq.sequence_hashes[0] and reg[0].parent is None
    assert m.status() == {"active": 3, "inactive": 0, "free": 13, "owned": 0}
    m.release(reg)
    assert all(not b.valid for b in reg)
    assert m.status()["inactive"] == 3
    assert m.touch(seq.sequence_hashes) == 3
    hits = m.match_g1(seq.sequence_hashes + [12345])
    assert [b.sequence_hash for b in hits] == seq.sequence_hashes
    match = m.match(seq.sequence_hashes)
    assert (match.num_g1, match.num_g2, len(match)) == (3, 0, 3)
    with pytest.raises(RuntimeError, match="held"):
        m.reset()  # blocks are held
    match.release()
    for b in hits:
        b.reset()
    m.reset()
    assert m.status() == {"active": 0, "inactive": 0, "free": 16, "owned": 0}
    assert m.match_g1(seq.sequence_hashes) == []


def test_build_block_token_by_token_and_weak_block():
    m = kvbm.KvBlockManager(SMALL)
    b = m.allocate(1)[0]
    assert b.state == "reset"
    b.init(salt_hash=0, parent=None)
    b.append([1, 2])
    assert b.state == "partial" and b.num_tokens == 2 and b.sequence_hash is None
    b.append([3, 4])
    b.commit()
    assert b.state == "complete" and b.sequence_hash == kvbm.compute_block_hash([1, 2, 3, 4])
    (reg,) = m.register_blocks([b])
    assert not b.valid
    weak = m.downgrade(reg)
    assert weak.sequence_hash == reg.sequence_hash
    again = weak.upgrade()
    assert again is not None and again.id == reg.id
    again.reset()
    reg.reset()
    m.reset()
    assert weak.upgrade() is None


def test_duplicate_registration_returns_existing_block():
    m = kvbm.KvBlockManager(SMALL)
    _, first = fill_request(m, list(range(4)))
    _, second = fill_request(m, list(range(4)))
    assert second[0].id == first[0].id
    assert m.status()["active"] == 1 and m.status()["owned"] == 0


def test_exceptions_by_status_code():
    m = kvbm.KvBlockManager(SMALL)
    with pytest.raises(MemoryError, match="cannot allocate"):
        m.allocate(17)
    b = m.allocate(1)[0]
    b.init()
    b.append([1, 2])
    with pytest.raises(ValueError, match="do not fit"):
        b.append([1, 2, 3])
    with pytest.raises(RuntimeError, match="page_size"):
        b.commit()
    with pytest.raises(RuntimeError, match="Partial"):
        m.register_blocks([b])
    assert b.valid  # all or nothing: the handle came back
    with pytest.raises(ValueError, match="twice"):
        m.register_blocks([b, b])
    with pytest.raises(TypeError):
        m.register_blocks([None])
    with pytest.raises(ValueError, match="layer"):
        b.chunk(5, 0)
    with pytest.raises(ValueError, match="level"):
        m.status("g9")
    b.release()
    with pytest.raises(RuntimeError, match="released"):
        b.chunk(0, 0)
    other = kvbm.KvBlockManager(SMALL)
    with pytest.raises(ValueError, match="another manager"):
        other.register_blocks(m.allocate(1))


# ---- zero-copy block memory ----

def test_numpy_writes_land_in_kvbm_and_views_share_memory():
    m = kvbm.KvBlockManager(SMALL)
    seq = m.make_sequence(list(range(4)))
    (b,) = m.allocate(1)
    b.apply(seq.block(0))
    k = b.chunk(1, 0, np.float32)
    assert k.shape == (PAGE, 8) and k.flags.writeable
    k[:] = np.arange(32, dtype=np.float32).reshape(PAGE, 8)
    # kvbm reads its own memory (C++ side): the bytes written through NumPy.
    assert b.chunk_checksum(1, 0) == xxh3(k.tobytes())
    whole = b.view(np.float32)
    assert whole.shape == (2, 2, PAGE, 8)
    assert np.array_equal(whole[1, 0], k)
    (reg,) = m.register_blocks([b])
    ro = reg.chunk(1, 0, np.float32)
    assert not ro.flags.writeable
    assert ro.__array_interface__["data"][0] == k.__array_interface__["data"][0]
    assert np.array_equal(ro, k)
    with pytest.raises(ValueError):
        ro[0, 0] = 1.0
    assert reg.chunk_checksum(1, 0) == xxh3(k.tobytes())
    with pytest.raises(ValueError, match="dtype must be"):
        reg.chunk(0, 0, np.dtype("V4"))
    odd = kvbm.KvBlockManager({"model": {"page_size": 4, "inner_dim": 3, "dtype_bytes": 1}, "g1": {"num_blocks": 2}})
    with pytest.raises(ValueError, match="whole number"):
        odd.allocate(1)[0].chunk(0, 0, np.float32)


def test_bytes_written_by_kvbm_are_seen_through_numpy():
    """The transfer engine (C++) copies a block to G2 and back into another G1 slot; NumPy sees the bytes."""
    m = kvbm.KvBlockManager(WITH_G2)
    seq = m.make_sequence(list(range(8)))
    blocks = m.allocate(2)
    expected = []
    for i, (block, tb) in enumerate(zip(blocks, seq.blocks())):
        block.apply(tb)
        data = np.random.default_rng(i).standard_normal((2, 2, PAGE, 8)).astype(np.float32)
        block.view(np.float32)[:] = data
        expected.append(data)
    m.release(m.register_blocks(blocks))
    m.flush()
    for r in range(4):  # overwrite all of G1 with other requests
        _, reg = fill_request(m, [1000 * (r + 1) + t for t in range(8)])
        m.release(reg)
    m.flush()
    assert m.match_g1(seq.sequence_hashes) == []
    match = m.match(seq.sequence_hashes)
    assert match.num_g2 == 2
    op = m.onboard(match)
    back = op.wait()
    assert op.done() and op.latency_seconds >= 0
    with pytest.raises(RuntimeError):
        op.wait()  # only once
    assert len(back) == 2
    for block, data in zip(back, expected):
        assert np.array_equal(block.view(np.float32), data)
    assert m.offload_stats()["g2_to_g1"] >= 2
    m.release(back)
    assert_idle(m)


def test_dlpack_numpy_round_trip():
    m = kvbm.KvBlockManager(SMALL)
    (b,) = m.allocate(1)
    view = b.chunk_view(0, 1, "float32")
    assert view.__dlpack_device__() == (1, 0) and view.shape == (PAGE, 8) and not view.readonly
    arr = np.from_dlpack(view)  # NumPy marks every DLPack import read-only
    assert arr.__array_interface__["data"][0] == view.data_ptr
    b.chunk(0, 1, np.float32)[:] = 7.5
    assert np.all(arr == 7.5)
    writable = np.asarray(view)  # __array__: no copy either, and writable for a MutableBlock
    writable[0, :] = -1.0
    assert np.all(arr[0] == -1.0)
    expected = np.full((PAGE, 8), 7.5, np.float32)
    expected[0] = -1.0
    assert b.chunk_checksum(0, 1) == xxh3(expected.tobytes())
    # An unconsumed capsule is freed by its destructor.
    capsule = view.__dlpack__()
    del capsule


def test_dlpack_torch_round_trip():
    torch = pytest.importorskip("torch")
    m = kvbm.KvBlockManager(SMALL)
    seq = m.make_sequence(list(range(4)))
    (b,) = m.allocate(1)
    b.apply(seq.block(0))
    t = torch.from_dlpack(b.chunk_view(1, 1, torch.float32))
    assert t.shape == (PAGE, 8) and t.dtype == torch.float32 and t.device.type == "cpu"
    t.copy_(torch.arange(32, dtype=torch.float32).reshape(PAGE, 8))
    assert b.chunk_checksum(1, 1) == xxh3(np.arange(32, dtype=np.float32).tobytes())
    (reg,) = m.register_blocks([b])
    r = torch.from_dlpack(reg.chunk_view(1, 1, "float32"))
    assert torch.equal(r, t)
    bf = torch.from_dlpack(reg.chunk_view(1, 1, "bfloat16"))
    assert bf.dtype == torch.bfloat16 and bf.shape == (PAGE, 16)
    # The tensor keeps the block pinned after every handle is gone.
    reg.reset()
    del b, reg
    gc.collect()
    assert m.status()["active"] == 1
    assert torch.equal(r, torch.arange(32, dtype=torch.float32).reshape(PAGE, 8))
    del r, t, bf
    gc.collect()
    assert_idle(m)


# ---- lifetimes ----

def test_context_managers_release():
    m = kvbm.KvBlockManager(SMALL)
    with m.allocate(1)[0] as b:
        assert m.status()["owned"] == 1
    assert not b.valid and m.status()["owned"] == 0
    seq, reg = fill_request(m, list(range(4)))
    with reg[0] as block:
        assert block.valid
    assert m.status()["active"] == 0 and m.status()["inactive"] == 1
    with m.match(seq.sequence_hashes) as match:
        assert len(match) == 1 and m.status()["active"] == 1
    assert_idle(m)



def test_releasing_twice_raises():
    m = kvbm.KvBlockManager(SMALL)
    (b,) = m.allocate(1)
    b.release()
    with pytest.raises(RuntimeError, match="released"):
        b.release()
    _, reg = fill_request(m, list(range(8)))
    m.release([reg[1]])
    with pytest.raises(RuntimeError, match=r"blocks\[1\] was already released"):
        m.release([reg[0], reg[1]])
    assert reg[0].valid  # all or nothing: the live block was not released either
    m.release([reg[0]])
    assert_idle(m)


def test_missing_files_raise_file_not_found(tmp_path):
    missing = tmp_path / "missing.toml"
    for call in (lambda: kvbm.Config.from_toml_file(str(missing)), lambda: kvbm.KvBlockManager(missing),
                 lambda: kvbm.replay(str(tmp_path / "missing.jsonl"))):
        with pytest.raises(FileNotFoundError, match="no such file") as e:
            call()
        assert e.value.filename.startswith(str(tmp_path))

def test_handles_released_on_garbage_collection():
    m = kvbm.KvBlockManager(WITH_G2)
    for i in range(20):
        seq, reg = fill_request(m, [i * 100 + t for t in range(8)])
        views = [b.chunk(0, 0) for b in reg] + [np.from_dlpack(b.chunk_view(1, 1)) for b in reg]
        owned = m.allocate(2)
        owned_views = [o.chunk(0, 1) for o in owned]
        match = m.match(seq.sequence_hashes)
        del seq, reg, views, owned, owned_views, match
    gc.collect()
    assert_idle(m)
    m.flush()
    assert_idle(m, "g2")


def test_views_outlive_the_manager_object():
    m = kvbm.KvBlockManager(SMALL)
    _, reg = fill_request(m, list(range(4)))
    view = reg[0].chunk(0, 0, np.uint32)
    expected = view.copy()
    del m, reg
    gc.collect()
    assert np.array_equal(view, expected)  # the view keeps the manager and the block alive


# ---- events ----

def test_event_callback():
    events = []
    m = kvbm.KvBlockManager(WITH_G2, on_event=events.append)
    seq, reg = fill_request(m, list(range(8)))
    m.release(reg)
    m.flush()
    stored = [e for e in events if e["type"] == "stored"]
    assert stored[0] == {"type": "stored", "block_hashes": seq.sequence_hashes, "parent": None,
                         "tokens": list(range(8)), "block_size": PAGE, "medium": "GPU"}
    cpu = [e for e in stored[1:] if e["medium"] == "CPU"]
    assert [h for e in cpu for h in e["block_hashes"]] == seq.sequence_hashes
    # Issue 26: a G2 copy's event carries the block's own tokens (it had none).
    assert [t for e in cpu for t in e["tokens"]] == list(range(8))
    m.reset()
    m.flush()
    assert events[-1]["type"] in ("cleared", "removed")
    assert m.event_stats()["sent"] == len(events)


def test_events_keys_publish_on_zmq_beside_the_callback():
    """Issue 26: the events.* keys reach the Python module: a ZMQ PUB (here bound, with a rank that offsets
    its port) carries the same events as the callback, every BlockStored with blocks × block_size tokens."""
    import msgpack
    import zmq

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    events = []
    m = kvbm.KvBlockManager({**WITH_G2, "events": {"endpoint": f"tcp://127.0.0.1:{port - 1}".replace("127.0.0.1", "*"),
                                                   "data_parallel_rank": 1, "batch_format": "map"}},
                            on_event=events.append)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{port}")
    try:
        # Wait until the subscription is live: publish a block at a time until one batch arrives.
        live = False
        for i in range(200):
            _, reg = fill_request(m, [1000 + 4 * i + k for k in range(4)])
            m.release(reg)
            m.flush()
            if sub.poll(50):
                live = True
                break
        assert live, "no batch reached the subscriber"
        while sub.poll(100):
            sub.recv_multipart()
        seq, reg = fill_request(m, list(range(8)))
        m.release(reg)
        m.flush()
        stored = []
        while sub.poll(1000):
            topic, _seq, payload = sub.recv_multipart()
            batch = msgpack.unpackb(payload, raw=False)
            assert batch["data_parallel_rank"] == 1
            stored += [e for e in batch["events"] if e["type"] == "BlockStored"]
        assert {e["medium"] for e in stored} == {"GPU", "CPU"}
        for e in stored:
            assert len(e["token_ids"]) == len(e["block_hashes"]) * e["block_size"]
            if e["block_hashes"] == seq.sequence_hashes:
                assert e["token_ids"] == list(range(8))
    finally:
        sub.close(0)
        ctx.term()
    with pytest.raises(ValueError, match="an ipc:// endpoint cannot take a data-parallel rank"):
        kvbm.KvBlockManager({**SMALL, "events": {"endpoint": "ipc:///tmp/kvbm-py-events", "data_parallel_rank": 1}})


def test_event_callback_exception_does_not_break_kvbm(monkeypatch):
    def boom(_event):
        raise RuntimeError("callback failed")

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)  # where such errors go (as from __del__)
    m = kvbm.KvBlockManager(SMALL, on_event=boom)
    _, reg = fill_request(m, list(range(4)))
    m.flush()
    m.release(reg)
    assert m.status()["inactive"] == 1
    assert reported and isinstance(reported[0].exc_value, RuntimeError)


# ---- threads ----

def test_many_python_threads():
    events = []
    m = kvbm.KvBlockManager({**SMALL, "g1": {"num_blocks": 64}, "g2": {"num_blocks": 256}},
                            on_event=events.append)
    errors = []
    shared_prefix = list(range(8))

    def worker(w):
        try:
            rng = np.random.default_rng(w)
            for i in range(40):
                tokens = shared_prefix + rng.integers(0, 50, 8).tolist()
                seq = m.make_sequence(tokens)
                hits = m.match_and_onboard(seq.sequence_hashes)
                for h in hits:
                    assert h.sequence_hash in seq.sequence_hashes
                    h.chunk(0, 0)
                fresh = m.allocate(seq.num_full_blocks - len(hits))
                for block, tb in zip(fresh, seq.blocks()[len(hits):]):
                    block.apply(tb)
                    block.chunk(0, 0, np.uint64)[:] = tb.sequence_hash
                registered = m.register_blocks(fresh)
                for r in registered:
                    assert r.chunk(0, 0, np.uint64)[0, 0] == r.sequence_hash
                m.release(hits + registered)
                if i % 10 == 0:
                    m.flush()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    m.flush()
    assert_idle(m)
    assert events


# ---- replay ----

def test_replay_returns_report_dict():
    trace = [[1, 2, 3], [1, 2, 4], {"hash_ids": [1, 2, 3, 5], "timestamp": 10.0}]
    report = kvbm.replay(trace, {"g1": {"num_blocks": 16}}, data=False, block_tokens=16)
    assert report["requests"] == 3
    assert report["blocks_total"] == 10
    assert report["blocks_hit"] == 2 + 3
    generated = kvbm.replay(None, {"g1": {"num_blocks": 64}, "g2": {"num_blocks": 128}}, requests=30, seed=3,
                            block_tokens=16)
    assert generated["requests"] == 30
    with pytest.raises(ValueError):
        kvbm.replay(None, workload="no-such-workload")


def test_replay_without_data_keeps_every_tier_and_agrees():
    config = {"model": {"num_layers": 2, "inner_dim": 8, "dtype_bytes": 1}, "g1": {"num_blocks": 32, "eviction": "lru"},
              "g2": {"num_blocks": 96, "eviction": "lru"}, "g3": {"num_blocks": 256, "eviction": "lru"},
              "offload": {"g3_min_frequency": 0}}
    fast = kvbm.replay(None, config, data=False, requests=400, seed=5, block_tokens=16)
    real = kvbm.replay(None, config, data=True, requests=400, seed=5, block_tokens=16)
    assert fast["tiers"]["g2"]["enabled"] and fast["tiers"]["g3"]["enabled"]
    assert fast["tiers"]["g2"]["hits"] + fast["tiers"]["g3"]["hits"] > 0
    for key in ("blocks_hit", "blocks_uncached"):
        assert fast[key] == real[key], key
    for tier in ("g1", "g2", "g3"):
        assert fast["tiers"][tier]["hits"] == real["tiers"][tier]["hits"], tier
    assert real["verification_failures"] == 0


# ---- the example and the stubs ----

def test_paged_attention_example():
    import paged_attention

    result = paged_attention.run()
    assert result["found"] == {"g1": 0, "g2": 3, "g3": 0}
    assert result["reused_blocks"] == 3
    assert result["max_abs_error"] < 1e-5
    assert result["g1_status"]["active"] == 0


def test_type_stubs_name_the_module_api():
    stub = (REPO / "python" / "kvbm" / "__init__.pyi").read_text()
    # Every class and function of the stub (TypedDicts describe dicts and Protocols users' classes; they are
    # not module attributes).
    classes = re.findall(r"^class (\w+)(\([^)]*\))?:", stub, re.MULTILINE)
    names = [name for name, bases in classes if "TypedDict" not in bases and "Protocol" not in bases]
    names += re.findall(r"^def (\w+)", stub, re.MULTILINE)
    assert len(names) > 10
    for name in names:
        assert hasattr(kvbm, name), name
    public = {n for n in dir(kvbm) if not n.startswith("_")}
    assert public <= set(names), public - set(names)


def test_g4_is_visible_in_has_tier_status_and_offload_stats(redis_server):
    redis_port, _ = redis_server
    m = kvbm.KvBlockManager({**SMALL, "g1": {"num_blocks": 4}, "g2": {"num_blocks": 4},
                             "g4": {"endpoints": f"127.0.0.1:{redis_port}", "deadline_ms": 2000}})
    assert m.has_tier("g4") is True and m.has_tier("G4") is True and m.has_tier("g3") is False
    assert "g4=True" in repr(m)
    assert set(m.status("g4")) == {"active", "inactive", "free", "owned"}
    # The store connects in the background; puts made before it is up are dropped (counted), not queued.
    import time
    for _ in range(400):
        if m.offload_stats()["g4"]["health"] == "available":
            break
        time.sleep(0.05)
    assert m.offload_stats()["g4"]["health"] == "available"
    # Twelve one-block requests through G1 (4) and G2 (4): the first ones end up only in G4.
    seqs = []
    for r in range(12):
        seq, reg = fill_request(m, [r * 100 + i for i in range(PAGE)])
        m.release(reg)
        m.flush()
        seqs.append(seq)
    stats = m.offload_stats()
    assert stats["g2_to_g4"] >= 1 and stats["g4"]["put"] == stats["g2_to_g4"]
    first = seqs[0].sequence_hashes
    blocks = m.match_and_onboard(first)
    assert len(blocks) == 1 and blocks[0].sequence_hash == first[0]
    m.release(blocks)
    stats = m.offload_stats()
    assert stats["g4_to_g1"] == 1 and stats["g4"]["hits"] >= 1 and stats["g4"]["health"] == "available"
    with pytest.raises(ValueError, match="'g4'"):
        m.status("g5")


# ---- wrong argument types: one readable TypeError naming the argument (issue 24, item 16)

@pytest.mark.parametrize("call, names", [
    (lambda m: m.match("abc"), ["match()", "hashes", "list of ints", "str"]),
    (lambda m: m.match({1: 2}), ["match()", "hashes", "list of ints", "dict"]),
    (lambda m: m.match([1.5]), ["match()", "hashes[0]", "an int", "float"]),  # was truncated to 1, silently
    (lambda m: m.match(np.asarray([1.5])), ["match()", "hashes", "float64"]),
    (lambda m: m.match_g1("abc"), ["match_g1()", "hashes", "str"]),
    (lambda m: m.match_and_onboard("abc"), ["match_and_onboard()", "hashes", "str"]),
    (lambda m: m.touch(b"abc"), ["touch()", "hashes", "bytes"]),
    (lambda m: m.allocate("x"), ["allocate()", "count", "an int >= 0", "str"]),
    (lambda m: m.allocate(1.5), ["allocate()", "count", "an int >= 0", "float"]),
    (lambda m: m.register_blocks({}), ["register_blocks()", "blocks", "list of kvbm.MutableBlock", "dict"]),
    (lambda m: m.register_blocks(["a"]), ["register_blocks()", "blocks[0]", "kvbm.MutableBlock", "str"]),
    (lambda m: m.register_blocks([None]), ["register_blocks()", "blocks[0]", "kvbm.MutableBlock", "NoneType"]),
    (lambda m: m.release(5), ["release()", "blocks", "list of kvbm.ImmutableBlock", "int"]),
    (lambda m: m.release(["x"]), ["release()", "blocks[0]", "kvbm.ImmutableBlock", "str"]),
    (lambda m: m.onboard(5), ["onboard()", "match", "kvbm.MatchResult", "int"]),
    (lambda m: m.downgrade("b"), ["downgrade()", "block", "kvbm.ImmutableBlock", "str"]),
    (lambda m: m.status(5), ["status()", "level", "a str", "int"]),
    (lambda m: m.has_tier(1), ["has_tier()", "level", "a str", "int"]),
    (lambda m: kvbm.KvBlockManager(123), ["config must be None, a dict", "got int"]),
    (lambda m: kvbm.KvBlockManager(SMALL, on_event=5), ["KvBlockManager()", "on_event", "callable or None", "int"]),
    (lambda m: kvbm.Config().set(5, 5), ["set()", "key", "a str", "int"]),
    (lambda m: kvbm.replay(trace=5), ["replay()", "trace", "None, a JSONL path or a list of requests", "int"]),
    (lambda m: kvbm.replay(trace={1: 2}), ["replay()", "trace", "dict"]),
    (lambda m: kvbm.replay(trace=[{"hash_ids": "ab"}]), ["replay()", 'trace[0]["hash_ids"]', "list of ints"]),
    (lambda m: kvbm.replay(trace=[[1], "ab"]), ["replay()", "trace[1]", "list of ints", "str"]),
    (lambda m: kvbm.replay(trace=[[1, None]]), ["replay()", "trace[0][1]", "an int", "NoneType"]),
    (lambda m: kvbm.replay(trace=[{"hash_ids": [1], "timestamp": "t"}]), ['trace[0]["timestamp"]', "number"]),
    (lambda m: kvbm.replay(requests="x"), ["replay()", "requests", "an int >= 0 or None", "str"]),
    (lambda m: kvbm.replay(data="yes"), ["replay()", "data", "a bool", "str"]),
    (lambda m: kvbm.replay(block_tokens=1.5), ["replay()", "block_tokens", "an int >= 0 or None", "float"]),
])
def test_wrong_argument_types_give_one_readable_line(call, names):
    m = kvbm.KvBlockManager(SMALL)
    with pytest.raises(TypeError) as e:
        call(m)
    message = str(e.value)
    for name in names:
        assert name in message, message
    assert "\n" not in message and "incompatible function arguments" not in message, message
    assert "kvbm::" not in message and "std::" not in message and "C++" not in message, message


def test_negative_counts_and_hashes_are_value_errors():
    m = kvbm.KvBlockManager(SMALL)
    with pytest.raises(ValueError, match=r"allocate\(\): count must be an int in \[0, 2\^64 - 1\], got -1"):
        m.allocate(-1)
    with pytest.raises(ValueError, match=r"match\(\): hashes must be ints in \[0, 2\^64 - 1\], got -1"):
        m.match([-1])
    with pytest.raises(ValueError, match=r"block_tokens must be in \[1, 65536\], got 0"):
        kvbm.replay(block_tokens=0)


def test_the_accepted_forms_still_work():
    m = kvbm.KvBlockManager(SMALL)
    seq = m.make_sequence(list(range(2 * PAGE)))
    hashes = seq.sequence_hashes
    blocks = m.allocate(2)
    for block, tb in zip(blocks, seq.blocks()):
        block.apply(tb)
    registered = m.register_blocks(tuple(blocks))  # any sequence of blocks
    m.release(iter(registered))
    for form in [list(hashes), tuple(hashes), np.asarray(hashes, dtype=np.uint64), np.asarray([1, 2], dtype=np.int64),
                 [2**64 - 1], []]:
        m.match(form)
    assert len(m.match_g1(np.asarray(hashes, dtype=np.uint64))) == 2
    assert m.touch(list(hashes)) == 2
    report = kvbm.replay(trace=([1, 2], [1, 3]), data=False, config={"g1": {"num_blocks": 8}})
    assert report["requests"] == 2
    report = kvbm.replay(trace=(r for r in [[1, 2], {"hash_ids": [1, 3], "timestamp": 5}]), data=False,
                         config={"g1": {"num_blocks": 8}})
    assert report["requests"] == 2


def test_apply_env_warns_about_unknown_names(monkeypatch):
    monkeypatch.setenv("KVBM_G1_NUM_BLOKS", "5")
    monkeypatch.setenv("KVBM_NOT_A_THING_AT_ALL", "1")
    monkeypatch.setenv("KVBM_G1_NUM_BLOCKS", "32")
    cfg = kvbm.Config()
    with pytest.warns(UserWarning) as record:
        cfg.apply_env()
    messages = sorted(str(w.message) for w in record)
    assert messages == [
        "KVBM_G1_NUM_BLOKS is not a configuration variable (ignored); did you mean KVBM_G1_NUM_BLOCKS?",
        "KVBM_NOT_A_THING_AT_ALL is not a configuration variable (ignored); `kvbm config keys` lists them",
    ], messages
    assert cfg.tier_blocks("g1") == 32
