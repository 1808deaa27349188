"""Block memory kinds through the Python API (issue 25 item 3): what a handle says its memory is, and the
DLPack device its chunk views carry. Host tests run everywhere; the device G1 tests need a CUDA GPU and
PyTorch built with CUDA and skip otherwise (scripts/gpu_check.sh runs them on a GPU machine)."""

from __future__ import annotations

import gc
import re

import numpy as np
import pytest

import kvbm

PAGE = 4
MODEL = {"num_layers": 2, "outer_dim": 2, "page_size": PAGE, "inner_dim": 8, "dtype_bytes": 4}
KDLCPU, KDLCUDA = 1, 2


def cuda_torch():
    """torch, when it can use a CUDA device; None otherwise."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def test_host_g1_is_system_memory_on_the_cpu():
    m = kvbm.KvBlockManager({"model": MODEL, "g1": {"num_blocks": 4}})
    seq = m.make_sequence(list(range(PAGE)))
    (b,) = m.allocate(1)
    assert b.memory_kind == "system" and b.device_id == -1
    assert b.chunk_view(0, 1).__dlpack_device__() == (KDLCPU, 0)
    b.apply(seq.block(0))
    (reg,) = m.register_blocks([b])
    assert reg.memory_kind == "system" and reg.device_id == -1
    assert reg.chunk_view(1, 0, "float32").__dlpack_device__() == (KDLCPU, 0)
    m.release([reg])


def test_device_g1_without_a_gpu_fails_naming_the_tier():
    try:
        kvbm.KvBlockManager({"model": MODEL, "g1": {"num_blocks": 4, "memory": "device"}})
    except RuntimeError as e:
        assert re.search(r"^g1: device memory.*(no CUDA device is usable|built without CUDA)", str(e)), str(e)
    else:
        pytest.skip("a device G1 was created: this machine has a CUDA device")


@pytest.fixture
def torch_cuda():
    torch = cuda_torch()
    if torch is None:
        pytest.skip("needs a CUDA device and PyTorch with CUDA")
    return torch


def test_device_g1_chunks_are_cuda_tensors_without_a_copy(torch_cuda):
    torch = torch_cuda
    # G1 of one block: a second request evicts the first, which then comes back from G2.
    m = kvbm.KvBlockManager({"model": MODEL, "g1": {"num_blocks": 1, "memory": "device"}, "g2": {"num_blocks": 4}})
    seq = m.make_sequence(list(range(PAGE)))
    (b,) = m.allocate(1)
    assert b.memory_kind == "device" and b.device_id == 0
    view = b.chunk_view(1, 1, "float32")
    assert view.__dlpack_device__() == (KDLCUDA, 0) and view.shape == (PAGE, 8)
    t = torch.from_dlpack(view)
    assert t.device == torch.device("cuda", 0) and t.dtype == torch.float32 and t.shape == (PAGE, 8)
    assert t.data_ptr() == view.data_ptr  # kvbm's memory, not a copy
    data = torch.arange(32, dtype=torch.float32, device="cuda").reshape(PAGE, 8)
    t.copy_(data)
    torch.cuda.synchronize()
    # Host-only paths say why they cannot read GPU memory.
    for call in (lambda: b.chunk(1, 1), lambda: b.view(), lambda: np.asarray(view), lambda: b.chunk_checksum(1, 1)):
        with pytest.raises(ValueError, match="GPU memory"):
            call()
    b.apply(seq.block(0))
    (reg,) = m.register_blocks([b])
    assert reg.memory_kind == "device" and reg.device_id == 0
    r = torch.from_dlpack(reg.chunk_view(1, 1, "float32"))
    assert r.data_ptr() == t.data_ptr() and torch.equal(r, data)
    bf = torch.from_dlpack(reg.chunk_view(1, 1, "bfloat16"))
    assert bf.device.type == "cuda" and bf.dtype == torch.bfloat16 and bf.shape == (PAGE, 16)
    del r, t, bf, view
    reg.reset()
    gc.collect()
    m.flush()  # written through to G2 (device → host copy)
    other = m.make_sequence(list(range(100, 100 + PAGE)))
    (o,) = m.allocate(1)  # evicts the first block from G1
    o.apply(other.block(0))
    m.release(m.register_blocks([o]))
    m.flush()
    assert m.match_g1(seq.sequence_hashes) == []
    match = m.match(seq.sequence_hashes)
    assert match.num_g2 == 1
    (back,) = m.onboard(match).wait()  # host → device copy into G1
    got = torch.from_dlpack(back.chunk_view(1, 1, "float32"))
    assert got.device.type == "cuda" and torch.equal(got, data)
    del got
    m.release([back])
