"""Waiting for an onboarding from Python stays interruptible (issue 24 item 1).

A wait on a hung lower tier used to hold the thread in C++ until the copy ended: Ctrl-C raised
KeyboardInterrupt only 8.6 s later. The wait now returns to Python to run signal handlers while it waits.
The hung tier here is G4 on a redis-server stopped with SIGSTOP (a frozen disk cannot be made without root).
"""

from __future__ import annotations

import os
import signal
import socket
import time

import numpy as np
import pytest

import kvbm

PAGE = 4
MODEL = {"num_layers": 2, "outer_dim": 2, "page_size": PAGE, "inner_dim": 8, "dtype_bytes": 4}


def fill_request(manager, tokens):
    seq = manager.make_sequence(tokens)
    blocks = manager.allocate(seq.num_full_blocks)
    for block, tb in zip(blocks, seq.blocks()):
        block.apply(tb)
        block.chunk(0, 0, np.uint32)[:] = tb.sequence_hash & 0xFFFFFFFF
    return seq, manager.register_blocks(blocks)


def redis_keys(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"DBSIZE\r\n")
        return int(c.recv(64).strip().lstrip(b":"))


def redis_holds(port, sequence_hash):
    """Whether G4 holds the block (its key ends in the sequence hash, 16 hex digits)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(f"KEYS *:{sequence_hash:016x}\r\n".encode())
        return c.recv(4096).startswith(b"*1")


class Interrupted(Exception):
    pass


def test_a_signal_handler_interrupts_the_wait_not_the_onboarding(redis_server):
    port, server = redis_server
    m = kvbm.KvBlockManager({"model": MODEL, "g1": {"num_blocks": 4}, "g2": {"num_blocks": 4},
                             "g4": {"endpoints": f"127.0.0.1:{port}", "deadline_ms": 60000,
                                    "connect_timeout_ms": 60000, "io_timeout_ms": 600000}})
    # G4 connects in the background and drops puts until it is up: write warm-up requests until Redis
    # holds keys, then the request of the test, and let its four blocks land (start-up waits, not assertions).
    for w in range(1000):
        _, reg = fill_request(m, [900000 + 100 * w + t for t in range(PAGE)])
        m.release(reg)
        m.flush()
        if redis_keys(port) > 0:
            break
        time.sleep(0.01)
    seq, reg = fill_request(m, list(range(4 * PAGE)))
    m.release(reg)
    m.flush()
    for _ in range(1000):
        if all(redis_holds(port, h) for h in seq.sequence_hashes):
            break
        time.sleep(0.01)
    for r in range(2):  # push the first request out of G1 and G2: it is left in G4 only
        _, reg = fill_request(m, [1000 * (r + 1) + t for t in range(4 * PAGE)])
        m.release(reg)
        m.flush()
    match = m.match(seq.sequence_hashes)
    assert match.num_g2 == 0 and len(match) == 4, match

    def on_alarm(signum, frame):
        raise Interrupted()

    os.kill(server.pid, signal.SIGSTOP)  # G4 hangs: the fetch waits up to g4.deadline_ms (60 s)
    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        op = m.onboard(match)
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            op.wait()
        # The handler's exception ended the wait while the fetch was still hung.
        assert not op.done()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.kill(server.pid, signal.SIGCONT)
    blocks = op.wait()  # the onboarding went on; its result is still there
    assert len(blocks) == 4
    for block, tb in zip(blocks, seq.blocks()):
        assert np.all(block.chunk(0, 0, np.uint32) == tb.sequence_hash & 0xFFFFFFFF)
    m.release(blocks)
