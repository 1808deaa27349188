"""`kvbm plan` through the CLI: its JSON, its text, its chart, and every curve point checked against
`kvbm replay --no-data` at the same configuration (blocks_hit and per-tier hits, exactly)."""

import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOONCAKE = os.path.join(REPO, "..", "shared", "traces", "mooncake_conversation_trace.jsonl")
# The chain semantics of README.md "Replay semantics", as plan sets them by default.
SEMANTICS = ["--eviction", "lru", "--offload", "write_through", "--set", "offload.g3_min_frequency=0"]


def run(args):
    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (args, res.stderr)
    return res.stdout


def replay(kvbm_bin, source, g1_blocks, g2_bytes, g3_bytes=0, model="Llama-3.1-8B"):
    # replay's sizes are the model's real bytes, as plan's are.
    out = run([kvbm_bin, "replay", *source, "--no-data", "--json", *SEMANTICS, "--model", model,
               "--g1-blocks", str(g1_blocks), "--g2-bytes", str(g2_bytes),
               "--g3-bytes" if g3_bytes else "--g3-blocks", str(g3_bytes)])
    got = json.loads(out)
    assert got["bytes_per_block"] == 64 << 20 or model != "Llama-3.1-8B"
    return got


def plan(kvbm_bin, source, *extra):
    return json.loads(run([kvbm_bin, "plan", *source, "--json", *extra]))


def check_against_replays(kvbm_bin, source, p, picks):
    curve = p["curve"]
    assert len(curve) >= 8
    assert [c["g2_bytes"] for c in curve] == sorted({c["g2_bytes"] for c in curve})
    for i in picks:
        c = curve[i]
        got = replay(kvbm_bin, source, p["g1_blocks"], c["g2_bytes"])
        assert got["blocks_hit"] == c["blocks_hit"], (i, c)
        assert got["tiers"]["g1"]["hits"] == c["g1_hits"] and got["tiers"]["g2"]["hits"] == c["g2_hits"], (i, c)
        assert c["hit_rate"] == pytest.approx(got["blocks_hit"] / got["blocks_total"], abs=1e-6)


def test_generated_workloads(kvbm_bin):
    for workload in ("default", "system_prompt_heavy", "session_heavy", "one_off_heavy"):
        source = ["--workload", workload, "--requests", "500"]
        p = plan(kvbm_bin, source, "--g1-blocks", "64", "--points", "12")
        assert p["model"] == "Llama-3.1-8B" and p["bytes_per_block"] == 64 << 20  # real bytes, 512 tokens
        assert p["method"] == "stack pass"
        check_against_replays(kvbm_bin, source, p, [0, 5, 11])
        rec = p["recommended"]
        assert rec["reaches_target"] and rec["hit_rate"] >= 0.8 * p["attainable_hit_rate"] - 1e-9
        assert replay(kvbm_bin, source, 64, rec["g2_bytes"])["blocks_hit"] == rec["blocks_hit"]
        if rec["g2_blocks"] > 0:  # the smallest: one block less misses the target
            less = replay(kvbm_bin, source, 64, rec["g2_bytes"] - p["bytes_per_block"])
            assert less["blocks_hit"] < 0.8 * p["attainable_blocks_hit"]


def test_attainable_is_the_unlimited_cache(kvbm_bin):
    source = ["--workload", "session_heavy", "--requests", "500"]
    p = plan(kvbm_bin, source, "--g1-blocks", "32", "--points", "8")
    unlimited = json.loads(run([kvbm_bin, "replay", *source, "--no-data", "--json", *SEMANTICS,
                                "--g1-blocks", "unlimited", "--g2-blocks", "0", "--g3-blocks", "0"]))
    assert p["attainable_blocks_hit"] == unlimited["blocks_hit"]


def test_other_policy_and_g3_use_replays(kvbm_bin, tmp_path):
    source = ["--workload", "default", "--requests", "400"]
    p = plan(kvbm_bin, source, "--g1-blocks", "32", "--points", "8", "--eviction", "s3fifo", "--g3",
             "--g3-points", "4")
    assert p["method"] == "replays" and "s3fifo" in p["method_reason"]
    assert p["settings"]["g1_eviction"] == "s3fifo"
    g3 = p["g3_curve"]
    assert len(g3) >= 2
    cmd = [kvbm_bin, "replay", *source, "--no-data", "--json", "--eviction", "s3fifo", "--offload", "write_through",
           "--set", "offload.g3_min_frequency=0", "--bytes-per-block", str(p["bytes_per_block"]),
           "--g1-blocks", "32", "--g2-bytes", str(p["recommended"]["g2_bytes"]), "--g3-bytes", str(g3[-1]["g3_bytes"])]
    assert json.loads(run(cmd))["blocks_hit"] == g3[-1]["blocks_hit"]


def test_text_and_chart(kvbm_bin, tmp_path):
    svg = tmp_path / "plan.svg"
    out = run([kvbm_bin, "plan", "--workload", "default", "--requests", "400", "--g1-bytes", "2GiB", "--g3",
               "--g3-points", "3", "--points", "10", "--out-svg", str(svg)])
    for line in out.splitlines():
        assert len(line) <= 100, line
    for words in ("attainable", "blocks hit / blocks referenced", "recommended G2", "frequency filter",
                  "G3 adds", "one replay", "offload.g3_min_frequency=2"):
        assert words in out
    text = svg.read_text()
    assert "recommended G2" in text and "target" in text and "log scale" in text and "<circle" in text


def test_models_as_replay_takes_them(kvbm_bin, tmp_path):
    """A model file, dimension flags and a bare block size give plan the same real bytes as replay."""
    model = tmp_path / "tiny.toml"
    model.write_text('name = "tiny"\nnum_layers = 4\nnum_kv_heads = 2\nhead_dim = 64\ndtype_bytes = 2\n'
                     'page_size = 16\n')
    source = ["--workload", "default", "--requests", "200"]
    for flags, block_bytes in ((["--model", str(model)], 4 * 2 * 2 * 64 * 2 * 16),
                               (["--model", "Llama-3.1-8B", "--dtype-bytes", "1"], 32 << 20),
                               (["--bytes-per-block", "2MiB"], 2 << 20)):
        p = plan(kvbm_bin, source, "--g1-blocks", "64", "--points", "8", *flags)
        r = json.loads(run([kvbm_bin, "replay", *source, "--no-data", "--json", "--g1-blocks", "64", *flags]))
        assert p["bytes_per_block"] == r["bytes_per_block"] == block_bytes, flags
        text = run([kvbm_bin, "plan", *source, "--g1-blocks", "64", "--points", "8", *flags])
        assert any(" layers × " in line and " tokens = " in line for line in text.splitlines()) == (
            "--bytes-per-block" not in flags), text


def test_bad_flags_exit_2(kvbm_bin):
    for args in (["--target", "1.5", "--g1-blocks", "8"], [], ["--g1-blocks", "8", "--model", "GPT-9"],
                 ["--g1-blocks", "8", "--model", "Llama-3.1-8B", "--bytes-per-block", "2MiB"],
                 ["--g1-blocks", "8", "--model", "missing.toml"]):
        res = subprocess.run([kvbm_bin, "plan", *args], capture_output=True, text=True, timeout=60)
        assert res.returncode == 2, (args, res.stderr)


@pytest.mark.skipif(not os.path.exists(MOONCAKE), reason="no ../shared/traces/mooncake_conversation_trace.jsonl")
def test_mooncake(kvbm_bin):
    source = ["--trace", MOONCAKE]
    p = plan(kvbm_bin, source, "--g1-bytes", "40GiB")
    assert p["g1_blocks"] == 640 and p["bytes_per_block"] == 64 << 20 and len(p["curve"]) == 30
    sources = {c["source"] for c in p["curve"]}
    assert sources == {"stack pass", "re-simulated"}
    check_against_replays(kvbm_bin, source, p, [0, 8, 14, 20, 25, 29])
    assert p["replay_blocks_hit"] == p["recommended"]["blocks_hit"]
    assert p["plan_seconds"] > 0 and p["replay_seconds"] > 0
