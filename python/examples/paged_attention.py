#!/usr/bin/env python3
"""A tiny NumPy decoder with paged KV stored in kvbm blocks.

Request A runs a full prefill and stores each full block's K and V (per layer) in kvbm G1 blocks, which
are registered (and copied to G2 in the background). Other requests then fill G1 until A's blocks are
evicted from it. Request B shares A's prefix: kvbm finds that prefix in G2, onboards it back into G1, and
B's prefill reads the cached K/V straight from the block memory (NumPy views, no copies) and computes only
its new tokens. B's output equals the output of a prefill without any reuse.

Run: PYTHONPATH=build/python python3 python/examples/paged_attention.py
"""

from __future__ import annotations

import numpy as np

import kvbm

PAGE = 4  # tokens per block
LAYERS = 2
HEADS = 2
HEAD_DIM = 8
D_MODEL = HEADS * HEAD_DIM
VOCAB = 97


class TinyDecoder:
    """Embedding + LAYERS residual causal self-attention layers (float32)."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        scale = 1.0 / np.sqrt(D_MODEL)
        self.embed = rng.standard_normal((VOCAB, D_MODEL)).astype(np.float32)
        self.wq, self.wk, self.wv, self.wo = (
            [(rng.standard_normal((D_MODEL, D_MODEL)) * scale).astype(np.float32) for _ in range(LAYERS)]
            for _ in range(4)
        )

    def prefill(self, tokens, cached_kv=None):
        """Hidden states of tokens[n:] where n = len of the cached prefix.

        cached_kv: per layer, (K, V) arrays of shape (n, D_MODEL) for the first n tokens (None = no cache).
        Returns (hidden states of the new tokens, per-layer (K, V) of all tokens).
        """
        n = 0 if cached_kv is None else cached_kv[0][0].shape[0]
        x = self.embed[np.asarray(tokens[n:])]
        total = len(tokens)
        kv_out = []
        for layer in range(LAYERS):
            q, k, v = x @ self.wq[layer], x @ self.wk[layer], x @ self.wv[layer]
            if n:
                k = np.concatenate([cached_kv[layer][0], k])
                v = np.concatenate([cached_kv[layer][1], v])
            kv_out.append((k, v))
            qh = q.reshape(-1, HEADS, HEAD_DIM).transpose(1, 0, 2)  # (H, new, Dh)
            kh = k.reshape(-1, HEADS, HEAD_DIM).transpose(1, 0, 2)  # (H, total, Dh)
            vh = v.reshape(-1, HEADS, HEAD_DIM).transpose(1, 0, 2)
            scores = qh @ kh.transpose(0, 2, 1) / np.sqrt(HEAD_DIM)  # (H, new, total)
            query_pos = np.arange(n, total)[:, None]
            scores = np.where(np.arange(total)[None, :] <= query_pos, scores, -np.inf)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            probs = scores / scores.sum(-1, keepdims=True)
            attn = (probs @ vh).transpose(1, 0, 2).reshape(-1, D_MODEL)
            x = x + attn @ self.wo[layer]
        return x, kv_out


def make_manager(on_event=None) -> kvbm.KvBlockManager:
    # K and V (outer_dim 2) of D_MODEL float32 values per token; G1 holds 6 blocks, G2 64.
    config = {
        "model": {"num_layers": LAYERS, "outer_dim": 2, "page_size": PAGE, "inner_dim": D_MODEL, "dtype_bytes": 4},
        "g1": {"num_blocks": 6},
        "g2": {"num_blocks": 64},
    }
    return kvbm.KvBlockManager(config, on_event=on_event)


def store_blocks(manager, seq, kv, first_block: int):
    """Writes K/V of seq's full blocks [first_block, ...) into fresh G1 blocks and registers them."""
    count = seq.num_full_blocks - first_block
    if count <= 0:
        return []
    fresh = manager.allocate(count)
    for i, block in enumerate(fresh):
        index = first_block + i
        rows = slice(index * PAGE, (index + 1) * PAGE)
        block.apply(seq.block(index))
        for layer, (k, v) in enumerate(kv):
            block.chunk(layer, 0, np.float32)[:] = k[rows]  # writes land in kvbm's memory
            block.chunk(layer, 1, np.float32)[:] = v[rows]
    return manager.register_blocks(fresh)


def run(verbose: bool = False) -> dict:
    model = TinyDecoder()
    manager = make_manager()
    rng = np.random.default_rng(1)
    prefix = rng.integers(0, VOCAB, 3 * PAGE).tolist()

    # Request A: full prefill; its 3 full blocks go to G1 (and, write-through, to G2).
    tokens_a = prefix + [5, 7]
    seq_a = manager.make_sequence(tokens_a)
    _, kv_a = model.prefill(tokens_a)
    manager.release(store_blocks(manager, seq_a, kv_a, 0))
    # Write-through copies to G2 run in the background; wait for them before pushing A out of G1 (a block
    # evicted before its turn is skipped, not copied).
    manager.flush()

    # Other requests push A's blocks out of G1 (6 slots).
    for r in range(3):
        other = rng.integers(0, VOCAB, 4 * PAGE).tolist()
        seq = manager.make_sequence(other)
        _, kv = model.prefill(other)
        manager.release(store_blocks(manager, seq, kv, 0))
        manager.flush()  # let write-through finish: copies pin their G1 source blocks while they run
    assert not manager.match_g1(seq_a.sequence_hashes), "request A's blocks should have left G1"

    # Request B: same prefix, new suffix. The prefix is found in G2 and onboarded into G1.
    tokens_b = prefix + [11, 13, 17, 19, 23]
    seq_b = manager.make_sequence(tokens_b)
    match = manager.match(seq_b.sequence_hashes)
    found = {"g1": match.num_g1, "g2": match.num_g2, "g3": match.num_g3}
    blocks = manager.onboard(match).wait()
    n = len(blocks) * PAGE
    cached_kv = []
    for layer in range(LAYERS):
        k = np.concatenate([b.chunk(layer, 0, np.float32) for b in blocks]) if blocks else None
        v = np.concatenate([b.chunk(layer, 1, np.float32) for b in blocks]) if blocks else None
        cached_kv.append((k, v))
    out_reuse, kv_b = model.prefill(tokens_b, cached_kv if n else None)
    out_full, _ = model.prefill(tokens_b)
    max_err = float(np.abs(out_reuse - out_full[n:]).max())
    manager.release(blocks + store_blocks(manager, seq_b, kv_b, len(blocks)))
    manager.flush()

    result = {"found": found, "reused_blocks": len(blocks), "new_tokens": len(tokens_b) - n, "max_abs_error": max_err,
              "g1_status": manager.status("g1"), "offload": manager.offload_stats()}
    if verbose:
        print(f"request B: prefix found in {found}, {len(blocks)} blocks onboarded into G1; "
              f"computed {result['new_tokens']} of {len(tokens_b)} tokens")
        print(f"max |output(reuse) - output(no reuse)| = {max_err:.3g}")
    assert found["g2"] == 3 and len(blocks) == 3, found
    assert np.allclose(out_reuse, out_full[n:], atol=1e-5, rtol=1e-5), max_err
    return result


if __name__ == "__main__":
    run(verbose=True)
