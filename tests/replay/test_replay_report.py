"""`kvbm replay` as a capacity planner reads it: real bytes of a named model, reports of at most 100
columns that state the settings behind the answer, every report line explained in docs/report.md, JSON
everywhere --json is given, and charts that say what they show.

Generated workloads keep this fast; the Mooncake trace (../shared/traces) adds a check where it is present.
"""

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOONCAKE = os.path.join(REPO, "..", "shared", "traces", "mooncake_conversation_trace.jsonl")
COLUMNS = 100
SVG = "{http://www.w3.org/2000/svg}"
LLAMA_8B_BLOCK = 32 * 2 * 512 * 8 * 128 * 2  # layers × K,V × tokens × KV heads × head dim × bf16 = 64 MiB
SMALL = ["--requests", "200", "--seed", "3"]


def run(kvbm_bin, *args, code=0, cwd=None):
    res = subprocess.run([os.path.abspath(kvbm_bin), "replay", *args], capture_output=True, text=True, timeout=300,
                         cwd=cwd)
    assert res.returncode == code, (args, res.returncode, res.stdout, res.stderr)
    return res


def replay_json(kvbm_bin, *args):
    return json.loads(run(kvbm_bin, *args, "--json").stdout)


def assert_narrow(text):
    wide = [line for line in text.splitlines() if len(line) > COLUMNS]
    assert not wide, "\n".join(f"{len(line)}: {line}" for line in wide)


# ---------------------------------------------------------------------------------------------------
# Real bytes of a named model.
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [["--no-data"], []], ids=["no_data", "data"])
def test_json_has_the_model_and_its_real_block(kvbm_bin, mode):
    got = replay_json(kvbm_bin, *SMALL, *mode)
    assert got["model"]["name"] == "Llama-3.1-8B"
    assert (got["model"]["num_layers"], got["model"]["num_kv_heads"], got["model"]["head_dim"]) == (32, 8, 128)
    assert got["bytes_per_block"] == got["model"]["bytes_per_block"] == LLAMA_8B_BLOCK
    for tier in ("g1", "g2", "g3"):
        t = got["tiers"][tier]
        assert t["capacity_bytes"] == t["capacity_blocks"] * LLAMA_8B_BLOCK
    if mode:
        assert got["stored_bytes_per_block"] == 0
    else:
        assert got["stored_bytes_per_block"] == LLAMA_8B_BLOCK // 1024  # the default --scale


@pytest.mark.parametrize("mode", [["--no-data"], []], ids=["no_data", "data"])
def test_sizes_typed_are_real_bytes_of_the_model(kvbm_bin, mode):
    got = replay_json(kvbm_bin, *SMALL, *mode, "--g1-bytes", "64GiB", "--g2-bytes", "128GiB", "--g3-blocks", "0")
    assert got["tiers"]["g1"]["capacity_blocks"] == 1024  # 64 GiB of 64 MiB blocks
    assert got["tiers"]["g2"]["capacity_blocks"] == 2048
    assert got["tiers"]["g2"]["capacity_bytes"] == 128 << 30


def test_data_mode_stores_fewer_bytes_with_the_same_hits(kvbm_bin):
    shape = ["--g1-blocks", "40", "--g2-blocks", "80", "--g3-blocks", "300"]
    counters = lambda r: (r["blocks_hit"], [r["tiers"][t]["hits"] for t in ("g1", "g2", "g3")])
    identities = replay_json(kvbm_bin, *SMALL, *shape, "--no-data")
    for scale in ("1024", "64"):
        stored = replay_json(kvbm_bin, *SMALL, *shape, "--scale", scale)
        assert stored["stored_bytes_per_block"] == LLAMA_8B_BLOCK // int(scale)
        assert stored["verification_failures"] == 0
        assert counters(stored) == counters(identities), scale
    text = run(kvbm_bin, *SMALL, *shape, "--scale", "1024").stdout
    assert "stores 64.0 KiB of each 64.0 MiB block" in text


def test_presets_files_and_flags(kvbm_bin, tmp_path):
    ds = replay_json(kvbm_bin, *SMALL, "--no-data", "--model", "DeepSeek-V3")
    assert ds["model"]["shape"] == "latent" and ds["model"]["outer_dim"] == 1
    assert ds["bytes_per_block"] == 61 * 1 * 512 * 576 * 2
    fp8 = replay_json(kvbm_bin, *SMALL, "--no-data", "--model", "llama-3.1-8b", "--dtype-bytes", "1")
    assert fp8["bytes_per_block"] == LLAMA_8B_BLOCK // 2
    custom = replay_json(kvbm_bin, *SMALL, "--no-data", "--layers", "40", "--kv-heads", "8", "--head-dim", "128")
    assert (custom["model"]["name"], custom["bytes_per_block"]) == ("custom", 40 * 2 * 512 * 1024 * 2)
    model = tmp_path / "m.toml"
    model.write_text('# an MLA model\n[model]\nname = "tiny-mla"\nnum_layers = 4\nlatent_dim = 64  # latent\n'
                     'dtype_bytes = 1\npage_size = 16\n')
    got = replay_json(kvbm_bin, *SMALL, "--no-data", "--model", str(model))
    assert (got["model"]["name"], got["block_tokens"], got["bytes_per_block"]) == ("tiny-mla", 16, 4 * 16 * 64)
    anonymous = replay_json(kvbm_bin, *SMALL, "--no-data", "--bytes-per-block", "2MiB")
    assert (anonymous["model"]["shape"], anonymous["bytes_per_block"]) == ("block_bytes", 2 << 20)
    text = run(kvbm_bin, *SMALL, "--no-data", "--model", "Qwen3-8B").stdout
    assert "36 layers × 2 (K, V) × 8 KV heads × 128 head dim × 2 B × 512 tokens = 72.0 MiB" in text


@pytest.mark.parametrize("args,flag", [
    (["--scale", "0.5"], "--scale"), (["--layers", "40"], "--kv-heads"), (["--kv-heads", "0", "--head-dim", "8",
                                                                          "--layers", "2"], "--kv-heads"),
    (["--model", "Qwen3-8B", "--latent-dim", "9", "--kv-heads", "2"], "--latent-dim"),
    (["--model", "Qwen3-8B", "--bytes-per-block", "2MiB"], "--bytes-per-block"),
    (["--bytes-per-block", "1000"], "--bytes-per-block"), (["--dtype-bytes", "32", "--model", "Qwen3-8B"],
                                                           "--dtype-bytes"),
    (["--model", "no-such-model"], "--model"), (["--model", "missing.toml"], "--model"),
])
def test_bad_model_flags_exit_2_naming_the_flag(kvbm_bin, args, flag):
    res = run(kvbm_bin, "--no-data", *args, code=2)
    assert flag in res.stderr, res.stderr


def test_bad_model_file_names_the_line(kvbm_bin, tmp_path):
    model = tmp_path / "bad.toml"
    model.write_text("num_layers = 4\nheads = 8\n")
    res = run(kvbm_bin, "--no-data", "--model", str(model), code=2)
    assert "line 2" in res.stderr and "heads" in res.stderr, res.stderr


# ---------------------------------------------------------------------------------------------------
# Reports people can read.
# ---------------------------------------------------------------------------------------------------


def test_text_reports_fit_in_100_columns(kvbm_bin, tmp_path):
    long_dir = tmp_path / ("a_rather_long_directory_name_for_traces_" * 3)
    long_dir.mkdir()
    trace = long_dir / "trace.jsonl"
    subprocess.run([kvbm_bin, "gen", "--preset", "default", "--seed", "2", "--requests", "150", "--format",
                    "mooncake", "--out", str(trace)], check=True, capture_output=True, timeout=60)
    out = "o"  # written in tmp_path: "wrote <path>" lines print the path as given
    texts = [
        run(kvbm_bin, *SMALL).stdout,
        run(kvbm_bin, "--trace", str(trace), "--no-data", "--set", "offload.backlog=drop").stdout,
        run(kvbm_bin, "--trace", str(trace), "--g1-blocks", "4", "--g2-blocks", "8", "--g3-blocks", "16",
            "--model", "DeepSeek-V3", "--eviction", "s3fifo_prefix").stdout,
        run(kvbm_bin, "--trace", str(trace), "--no-data", "--sweep", "g2=1GiB,64GiB,4TiB", "--out-csv",
            out + ".csv", "--out-svg", out + ".svg", cwd=tmp_path).stdout,
        run(kvbm_bin, "--trace", str(trace), "--compare",
            "lru,priority_lru,lineage,s3fifo,slru,lfu,s3fifo_prefix,slru_prefix,lfu_prefix,learned,optimal",
            "--sweep", "g1=10,100,1000", "--out-csv", out + ".csv", "--out-svg", out + ".svg", cwd=tmp_path).stdout,
    ]
    assert "wrote o.svg" in texts[-1]
    for text in texts:
        assert_narrow(text)
    assert "…" in texts[1]  # the long trace path is shortened from the front, its file name kept
    assert "trace.jsonl" in texts[1]


def test_header_states_the_settings_that_change_the_answer(kvbm_bin):
    text = run(kvbm_bin, *SMALL, "--no-data", "--set", "g2.eviction=lru", "--offload", "write_back").stdout
    assert re.search(r"eviction +g1 adaptive, g2 lru, g3 lru", text), text
    assert "offload.g3_min_frequency = 2" in text
    assert "write_back G1→G2, write_back G2→G3" in text
    assert "512 tokens" in text
    got = replay_json(kvbm_bin, *SMALL, "--no-data", "--set", "offload.g3_min_frequency=3")
    assert got["settings"]["g3_min_frequency"] == 3
    assert got["settings"]["eviction"] == {"g1": "adaptive", "g2": "lru", "g3": "lru"}


def report_labels(text):
    """The label of every line of a text report: its first words up to two spaces."""
    labels = set()
    for line in text.splitlines()[1:]:
        m = re.match(r"  (\S+(?: \S+)?)(?:  |$)", line)
        if m:
            labels.add(m.group(1))
    return labels


def test_every_report_line_and_counter_is_explained_in_docs(kvbm_bin, tmp_path):
    with open(os.path.join(REPO, "docs", "report.md")) as f:
        doc = f.read()
    texts = [run(kvbm_bin, *SMALL).stdout,
             run(kvbm_bin, *SMALL, "--no-data", "--g1-blocks", "2", "--g2-blocks", "0", "--g3-blocks",
                 "0").stdout]
    labels = set().union(*(report_labels(t) for t in texts))
    assert {"requests", "hit rate", "G3 filter", "present", "lost", "moved down", "tier"} <= labels, labels
    for label in labels:
        assert f"`{label}`" in doc, f"docs/report.md does not explain the report line '{label}'"
    got = replay_json(kvbm_bin, *SMALL)

    def keys(obj, prefix=""):
        for k, v in obj.items():
            yield prefix + k
            if k == "tiers":
                yield from keys(v["g1"], "tiers.gN.")
            elif k == "pairs":  # bandwidth.pairs: the same fields for every pair of tiers
                yield from ((prefix + k + "." + pair) for pair in v)
                yield from keys(v["g1_to_g2"], prefix + "pairs.PAIR.")
            elif isinstance(v, dict) and k != "eviction":
                yield from keys(v, prefix + k + ".")

    for key in keys(got):
        assert f"`{key}`" in doc, f"docs/report.md does not explain the JSON field '{key}'"
    help_text = subprocess.run([kvbm_bin, "replay", "--help"], capture_output=True, text=True).stdout
    assert "docs/report.md" in help_text


# ---------------------------------------------------------------------------------------------------
# Bandwidth between tiers, per second of trace time.
# ---------------------------------------------------------------------------------------------------

PAIRS = ["g1_to_g2", "g2_to_g3", "g2_to_g4", "g3_to_g2", "g2_to_g1", "g3_to_g1", "g4_to_g1"]


def write_mooncake(path, requests):
    path.write_text("".join(json.dumps({"timestamp": t, "input_length": 512 * len(ids), "output_length": 1,
                                        "hash_ids": ids}) + "\n" for t, ids in requests))
    return str(path)


def test_bandwidth_json_adds_up_to_the_bytes_moved(kvbm_bin):
    got = replay_json(kvbm_bin, *SMALL, "--no-data")
    bw = got["bandwidth"]
    assert bw["window_s"] == 1
    assert bw["windows"] == int(bw["last_ms"] // 1000) - int(bw["first_ms"] // 1000) + 1 > 1
    assert list(bw["pairs"]) == PAIRS
    per_block = got["bytes_per_block"]
    for pair in ("g1_to_g2", "g2_to_g3", "g2_to_g1", "g3_to_g1", "g3_to_g2"):
        assert bw["pairs"][pair]["bytes"] == got["blocks_moved"][pair] * per_block, pair
    assert sum(bw["pairs"][p]["bytes"] for p in PAIRS[:4]) == got["bytes_moved"]["down"]
    assert sum(bw["pairs"][p]["bytes"] for p in PAIRS[4:]) == got["bytes_moved"]["up"]
    for pair, b in bw["pairs"].items():
        assert b["mean_bytes_per_s"] == pytest.approx(b["bytes"] / bw["windows"]), pair
        assert 0 <= b["p99_bytes_per_s"] <= b["max_bytes_per_s"], pair
        assert b["max_bytes_per_s"] % per_block == 0, pair  # whole blocks per 1 s window
    assert bw["pairs"]["g1_to_g2"]["max_bytes_per_s"] > 0


def test_bandwidth_is_of_trace_time_in_every_mode_and_timing(kvbm_bin):
    shape = ["--g1-blocks", "40", "--g2-blocks", "80", "--g3-blocks", "300"]
    identities = replay_json(kvbm_bin, *SMALL, *shape, "--no-data")["bandwidth"]
    assert replay_json(kvbm_bin, *SMALL, *shape)["bandwidth"] == identities  # data mode
    paced = replay_json(kvbm_bin, *SMALL, *shape, "--no-data", "--timing", "trace", "--speed", "1000000")
    assert paced["bandwidth"] == identities


def test_bandwidth_by_hand(kvbm_bin, tmp_path):
    # G1 4 blocks, G2 100, LRU, write-through: three requests in second 0 copy 6 blocks into G2 (the third
    # evicts 1 and 2 from G1), one in second 2 brings 1 and 2 back up from G2. Windows 0, 1, 2.
    trace = write_mooncake(tmp_path / "t.jsonl", [(0, [1, 2]), (300, [3, 4]), (900, [5, 6]), (2500, [1, 2])])
    shape = ["--g1-blocks", "4", "--g2-blocks", "100", "--g3-blocks", "0", "--eviction", "lru",
             "--offload", "write_through"]
    got = replay_json(kvbm_bin, "--trace", trace, "--no-data", *shape)
    bw = got["bandwidth"]
    assert (bw["windows"], bw["first_ms"], bw["last_ms"]) == (3, 0, 2500)
    assert bw["pairs"]["g1_to_g2"] == {"bytes": 6 * LLAMA_8B_BLOCK, "mean_bytes_per_s": 2 * LLAMA_8B_BLOCK,
                                       "p99_bytes_per_s": 6 * LLAMA_8B_BLOCK, "max_bytes_per_s": 6 * LLAMA_8B_BLOCK}
    assert bw["pairs"]["g2_to_g1"]["bytes"] == 2 * LLAMA_8B_BLOCK
    assert bw["pairs"]["g2_to_g1"]["max_bytes_per_s"] == 2 * LLAMA_8B_BLOCK
    text = run(kvbm_bin, "--trace", trace, "--no-data", *shape).stdout
    assert_narrow(text)
    assert "over 3 windows of 1 s" in text
    assert re.search(r"G1→G2 +128\.0 MiB/s +384\.0 MiB/s +384\.0 MiB/s", text), text
    assert not re.search(r"^ +G2→G3 ", text, re.M)  # rows only for pairs of tiers that are on

    # Without times (every timestamp the same) there is nothing to divide by.
    flat = write_mooncake(tmp_path / "flat.jsonl", [(0, [1, 2]), (0, [3, 4]), (0, [1])])
    assert replay_json(kvbm_bin, "--trace", flat, "--no-data", *shape)["bandwidth"] is None
    text = run(kvbm_bin, "--trace", flat, "--no-data", *shape).stdout
    assert re.search(r"bandwidth +not measured: every request has the same timestamp", text), text


def test_compare_json_is_json(kvbm_bin, tmp_path):
    out = str(tmp_path / "c")
    got = replay_json(kvbm_bin, *SMALL, "--compare", "lru,optimal", "--sweep", "g1=20,200", "--out-csv",
                      out + ".csv", "--out-svg", out + ".svg")
    assert got["policies"] == ["lru", "optimal"]
    assert got["bytes_per_block"] == LLAMA_8B_BLOCK and got["model"]["name"] == "Llama-3.1-8B"
    assert [(r["policy"], r["capacity_blocks"]) for r in got["results"]] == [
        ("lru", 20), ("lru", 200), ("optimal", 20), ("optimal", 200)]
    assert all(r["capacity_bytes"] == r["capacity_blocks"] * LLAMA_8B_BLOCK for r in got["results"])


def svg_texts(path):
    root = ET.parse(path).getroot()
    return root, ["".join(t.itertext()) for t in root.iter(SVG + "text")]


def test_charts_say_what_they_show(kvbm_bin, tmp_path):
    out = str(tmp_path / "s")
    run(kvbm_bin, *SMALL, "--no-data", "--sweep", "g3=1000,64GiB,1TiB", "--out-csv", out + ".csv",
        "--out-svg", out + ".svg")
    root, texts = svg_texts(out + ".svg")
    joined = "\n".join(texts)
    assert "hit rate against G3 capacity" in joined
    assert "generated:default" in joined and "Llama-3.1-8B" in joined
    assert "fixed: g1 1024 blocks (64.0 GiB), g2 4096 blocks (256.0 GiB)" in joined
    assert "log scale" in joined and "linear" not in joined
    assert "62.5 GiB" in joined and "1024 blocks" in joined  # each tick in the other unit too
    lines = root.findall(SVG + "polyline")
    assert len(lines) == 6  # blocks, tokens, mean per request, and each of three tiers
    colors = [p.get("stroke") for p in lines]
    assert len(set(colors)) == len(colors)

    run(kvbm_bin, *SMALL, "--compare", "lru,learned,optimal", "--sweep", "g1=20,200,2GiB", "--out-csv",
        out + ".csv", "--out-svg", out + ".svg")
    root, texts = svg_texts(out + ".svg")
    joined = "\n".join(texts)
    assert any(t.startswith("block hit rate (%") for t in texts), texts  # the y axis
    assert "capacity as given" in joined and "32 blocks" in joined
    assert len({p.get("stroke") for p in root.findall(SVG + "polyline")}) == 3


def test_mooncake_header_and_width(kvbm_bin):
    if not os.path.exists(MOONCAKE):
        pytest.skip("../shared/traces/mooncake_conversation_trace.jsonl is absent")
    res = run(kvbm_bin, "--trace", MOONCAKE, "--no-data", "--g2-bytes", "64GiB")
    assert_narrow(res.stdout)
    assert re.search(r"g2 +1024 +64\.0 GiB", res.stdout), res.stdout
    assert "over 3537 windows of 1 s" in res.stdout, res.stdout  # timestamps 0 .. 3536999 ms


def test_g4_hits_in_text_and_json_and_tiers_add_up(kvbm_bin, redis_server):
    """Data mode with a real redis-server as G4: the report's g4 row and tiers.g4.hits, and per-tier hits
    summing to the total (G4 hits were missing from both)."""
    port, _ = redis_server
    args = ["--requests", "200", "--g1-blocks", "200", "--g2-blocks", "100", "--g3-blocks", "0",
            "--set", f"g4.endpoints=127.0.0.1:{port}", "--set", "g4.deadline_ms=2000"]
    report = json.loads(run(kvbm_bin, *args, "--json").stdout)
    tiers = report["tiers"]
    assert tiers["g4"]["enabled"] and tiers["g4"]["hits"] > 0, tiers["g4"]
    assert sum(t["hits"] for t in tiers.values()) == report["blocks_hit"]
    text = run(kvbm_bin, *args).stdout
    row = re.search(r"^  g4 +\d+ +\S+ \S+ +(\d+) ", text, re.M)
    assert row and int(row.group(1)) > 0, text


def test_bench_replay_rows_are_kvbm_replay_no_data(kvbm_bin):
    """`kvbm bench replay` times what `kvbm replay --no-data` computes: each row's hits (total and per tier)
    are those of the replay it stands for, G1 alone and G1+G2+G3, for lru and the default policies; every
    G1+G2+G3 row carries its ratio to the G1 row before it. Figures are not checked (no timed assertions)."""
    workload = ["--requests", "400", "--seed", "7"]
    res = subprocess.run([kvbm_bin, "bench", "replay", *workload, "--g1-blocks", "200", "--g2-blocks", "500",
                          "--g3-blocks", "1500", "--repeat", "2", "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["rows"]
    assert [(r["eviction"], r["tiers"]) for r in rows] == [
        ("lru", "g1"), ("lru", "g1+g2+g3"), ("default", "g1"), ("default", "g1+g2+g3")]
    for r in rows:
        tiers = ["--g2-blocks", "500", "--g3-blocks", "1500"] if r["tiers"] == "g1+g2+g3" else \
            ["--g2-blocks", "0", "--g3-blocks", "0"]
        eviction = ["--eviction", "lru"] if r["eviction"] == "lru" else []
        d = replay_json(kvbm_bin, "--no-data", *workload, "--g1-blocks", "200", *tiers, *eviction)
        assert r["blocks_total"] == d["blocks_total"]
        assert r["blocks_hit"] == d["blocks_hit"]
        assert r["hits"] == [d["tiers"][t]["hits"] for t in ("g1", "g2", "g3", "g4")]
        assert r["median_blocks_per_second"] > 0
        assert ("ratio_to_g1_alone" in r) == (r["tiers"] == "g1+g2+g3")
    assert rows[1]["hits"][1] + rows[1]["hits"][2] > 0  # the chain's rows do reach G2 and G3


def test_bench_replay_bad_flags_exit_2_naming_the_flag(kvbm_bin):
    r = subprocess.run([kvbm_bin, "bench", "replay", "--repeat", "1", "--eviction", "fifo", "--requests", "10"],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "--eviction" in r.stderr and "lru" in r.stderr
