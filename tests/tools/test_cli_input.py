"""Input paths of the kvbm CLI (issue 24): traces through pipes, FIFOs and stdin, read once; the longest
line; unsigned flags; configuration files that are directories; one exit-code scheme (README.md "Exit
codes": 0 success, 1 runtime failure, 2 bad input)."""

import json
import os
import subprocess
import threading

import pytest

BAD_INPUT = 2


def run(args, code=0, **kwargs):
    kwargs.setdefault("timeout", 120)
    res = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert res.returncode == code, (args, res.returncode, res.stdout, res.stderr)
    return res


@pytest.fixture(scope="module")
def address_space_limit_works(kvbm_bin):
    """False for sanitizer builds: ASan and TSan reserve terabytes of shadow address space at start, so the
    binary cannot start at all under an RLIMIT_AS of a few GiB."""
    res = subprocess.run(["prlimit", "--as=1073741824", kvbm_bin, "--help"], capture_output=True, text=True,
                         timeout=60)
    return res.returncode == 0


def mooncake_line(i):
    return json.dumps({"timestamp": i, "input_length": 1024, "output_length": 1, "hash_ids": [i % 7, 100 + i]})


# ---- unsigned flags: a negative or non-decimal value is refused, never wrapped (item 10)

@pytest.mark.parametrize("args, flag", [
    (["gen", "--requests", "-1", "--out", "unused.jsonl"], "--requests"),
    (["gen", "--seed", "-1", "--out", "unused.jsonl"], "--seed"),
    (["replay", "--requests", "-1", "--no-data"], "--requests"),
    (["replay", "--seed", "-1", "--no-data"], "--seed"),
    (["replay", "--requests", "0x10", "--no-data"], "--requests"),
    (["replay", "--block-tokens", "-16", "--no-data"], "--block-tokens"),
    (["plan", "--requests", "-5"], "--requests"),
    (["replay", "--metrics-port", "0x10", "--no-data"], "--metrics-port"),  # an option with a range check too
])
def test_negative_unsigned_flags_are_refused(kvbm_bin, tmp_path, args, flag):
    res = run([kvbm_bin, *args], code=BAD_INPUT, cwd=tmp_path, timeout=30)
    assert flag in res.stderr and "unsigned decimal integer" in res.stderr, res.stderr
    assert not (tmp_path / "unused.jsonl").exists()


# ---- unsigned flags have an upper bound, named in --help and in the error (item 10)

@pytest.mark.parametrize("args, flag, allowed", [
    (["gen", "--requests", "18446744073709551615", "--out", "unused.jsonl"], "--requests", "0 to 100000000"),
    (["gen", "--requests", "100000001", "--out", "unused.jsonl"], "--requests", "0 to 100000000"),
    (["gen", "--format", "tokens", "--block-tokens", "4000000000", "--out", "unused.jsonl"], "--block-tokens",
     "1 to 65536"),
    (["replay", "--requests", "100000001", "--no-data"], "--requests", "0 to 100000000"),
    (["replay", "--block-tokens", "70000", "--no-data"], "--block-tokens", "1 to 65536"),
    (["plan", "--g1-blocks", "10", "--requests", "18446744073709551615"], "--requests", "0 to 100000000"),
    (["plan", "--g1-blocks", "10", "--threads", "4000000000"], "--threads", "0 to 1024"),
    (["events", "bench", "--events", "18446744073709551615"], "--events", "1 to 10000000"),
    # Stopped at once, reporting "no batch within 9223372036854775807 ms".
    (["events", "tail", "tcp://127.0.0.1:1", "--timeout-ms", "99999999999999999999"], "--timeout-ms",
     "0 to 31536000000"),
    (["events", "bench", "--blocks-per-event", "100000"], "--blocks-per-event", "1 to 4096"),
    (["events", "bench", "--events", "10000000", "--blocks-per-event", "4096"], "--events × --blocks-per-event",
     "at most 1000000000 tokens"),
])
def test_unsigned_flags_have_an_upper_bound(kvbm_bin, tmp_path, args, flag, allowed):
    res = run([kvbm_bin, *args], code=BAD_INPUT, cwd=tmp_path, timeout=30)
    assert flag in res.stderr and allowed in res.stderr, res.stderr
    assert not (tmp_path / "unused.jsonl").exists()


def test_the_request_bound_is_in_help(kvbm_bin):
    for cmd in ["gen", "replay", "plan"]:
        assert "[0 - 100000000]" in run([kvbm_bin, cmd, "--help"]).stdout


# ---- exit codes: one scheme (item 15)

@pytest.mark.parametrize("args", [
    ["replay", "--no-such-flag"],                  # CLI11: extras (was 109)
    ["replay", "--speed", "fast"],                 # CLI11: conversion (was 105)
    ["replay", "--metrics-port", "70000"],         # CLI11: validation (was 105/106)
    ["replay", "--timing", "later", "--no-data"],  # kvbm's own check
    ["nosuchcommand"],
])
def test_usage_errors_exit_2(kvbm_bin, args):
    run([kvbm_bin, *args], code=BAD_INPUT, timeout=30)


def test_help_exits_0(kvbm_bin):
    run([kvbm_bin, "replay", "--help"])


@pytest.mark.parametrize("bad_line", [1, 3])
def test_a_bad_trace_line_exits_2_wherever_it_is(kvbm_bin, tmp_path, bad_line):
    lines = [mooncake_line(i) for i in range(5)]
    lines[bad_line - 1] = "{bad"
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(lines) + "\n")
    for fmt in ([], ["--format", "mooncake"]):
        res = run([kvbm_bin, "replay", "--trace", str(trace), "--no-data", *fmt], code=BAD_INPUT)
        assert f"t.jsonl:{bad_line}:" in res.stderr, res.stderr


# ---- traces read once: a pipe, a FIFO, stdin (item 3)

N = 3000  # lines of ~2 KB: far more than one pipe buffer and one 1 MiB read


def write_trace(path):
    pad = list(range(1000, 1400))
    with open(path, "w") as f:
        for i in range(N):
            f.write(json.dumps({"timestamp": i, "input_length": 512 * 402, "hash_ids": [i % 7, 100 + i, *pad]}) + "\n")


def requests_of(res):
    return json.loads(res.stdout)["requests"]


def test_trace_from_stdin_is_read_whole(kvbm_bin, tmp_path):
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    with open(trace) as f:
        res = subprocess.run([kvbm_bin, "replay", "--trace", "-", "--no-data", "--json"], stdin=f,
                             capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert requests_of(res) == N


def test_trace_from_a_pipe_is_read_whole(kvbm_bin, tmp_path):
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    # `--trace <(cat t.jsonl)`: a /dev/fd path of a pipe; unlimited G1 and a sweep both read it twice.
    for extra in (["--g1-blocks", "unlimited"], ["--sweep", "g1=10,100", "--out-csv", str(tmp_path / "s.csv"),
                                                  "--out-svg", str(tmp_path / "s.svg")]):
        res = run(["bash", "-c", f'exec "$0" replay --trace <(cat "$1") --no-data --json "${{@:2}}"',
                   kvbm_bin, str(trace), *extra])
        got = json.loads(res.stdout)
        assert (got["requests"] if isinstance(got, dict) else [p["requests"] for p in got]) in (N, [N, N])


def test_trace_from_a_fifo_is_read_whole(kvbm_bin, tmp_path):
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    fifo = tmp_path / "f"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "w") as out, open(trace) as src:
            out.write(src.read())

    writer = threading.Thread(target=feed)
    writer.start()
    res = run([kvbm_bin, "replay", "--trace", str(fifo), "--no-data", "--json"], timeout=60)
    writer.join()
    assert requests_of(res) == N


# ---- the longest line (item 9)

@pytest.mark.parametrize("source", ["sparse", "/dev/zero"])
def test_a_line_without_newline_fails_fast_naming_the_limit(kvbm_bin, tmp_path, source, address_space_limit_works):
    path = source
    if source == "sparse":
        path = tmp_path / "z.bin"
        with open(path, "wb") as f:
            f.truncate(1 << 30)  # 1 GiB of zeros, no newline
    # Under 1 GiB of address space where the build allows a limit (sanitizer builds: the message alone).
    limit = ["prlimit", "--as=1073741824"] if address_space_limit_works else []
    res = run(limit + [kvbm_bin, "replay", "--trace", str(path), "--format", "mooncake", "--no-data"],
              code=BAD_INPUT, timeout=60)
    assert ":1: line longer than the limit of 67108864 bytes" in res.stderr, res.stderr


# ---- --timing trace: a far timestamp is refused, never a decades-long or overflowed wait (item 14)

@pytest.mark.parametrize("late", [1e12, 1e15, 1e300])
def test_far_timestamps_are_refused_under_timing_trace(kvbm_bin, tmp_path, late):
    trace = tmp_path / "late.jsonl"
    trace.write_text(mooncake_line(0) + "\n" +
                     json.dumps({"timestamp": late, "input_length": 5, "hash_ids": [1]}) + "\n")
    res = run([kvbm_bin, "replay", "--trace", str(trace), "--no-data", "--timing", "trace"], code=BAD_INPUT,
              timeout=60)
    assert "--timing trace: request 2" in res.stderr and "86400000 ms" in res.stderr, res.stderr



# ---- a directory is not a configuration file (item 12)

@pytest.mark.parametrize("args", [["config", "check", "{d}"], ["replay", "--config", "{d}", "--no-data"]])
def test_a_directory_as_configuration_is_refused(kvbm_bin, tmp_path, args):
    d = tmp_path / "d.toml"
    d.mkdir()
    res = run([kvbm_bin, *[a.format(d=d) for a in args]], code=BAD_INPUT)
    assert f"'{d}' is a directory" in res.stderr, res.stderr


# ---- values that were silently accepted or ignored (item 13)

def test_a_size_under_one_byte_is_an_error_not_no_tier(kvbm_bin):
    res = run([kvbm_bin, "config", "check", "-", "--set", "g2.bytes=0.5B"], code=BAD_INPUT)
    assert 'g2.bytes: size "0.5B" is less than one byte' in res.stderr, res.stderr


def test_bool_keys_document_what_they_accept(kvbm_bin):
    keys = run([kvbm_bin, "config", "keys"]).stdout
    persist = next(line for line in keys.splitlines() if "g3.persist" in line)
    assert "yes" in persist, persist
    out = run([kvbm_bin, "config", "check", "-", "--set", "g3.persist=yes"]).stdout
    assert "persist = true" in out
    res = run([kvbm_bin, "config", "check", "-", "--set", "g3.persist=maybe"], code=BAD_INPUT)
    assert "g3.persist must be true or false (also 1 or 0, yes or no, on or off), got 'maybe'" in res.stderr


def test_a_misspelt_kvbm_variable_is_warned_about(kvbm_bin):
    env = dict(os.environ, KVBM_G1_NUM_BLOKS="5")
    res = run([kvbm_bin, "config", "check", "-"], env=env)
    assert "KVBM_G1_NUM_BLOKS is not a configuration variable" in res.stderr, res.stderr
    assert "did you mean KVBM_G1_NUM_BLOCKS?" in res.stderr
    res = run([kvbm_bin, "replay", "--requests", "2", "--no-data"], env=env)
    assert "KVBM_G1_NUM_BLOKS" in res.stderr
    res = run([kvbm_bin, "plan", "--requests", "20", "--g1-blocks", "100"], env=env)
    assert ("kvbm plan: warning: KVBM_G1_NUM_BLOKS is not a configuration variable (ignored); "
            "did you mean KVBM_G1_NUM_BLOCKS?") in res.stderr, res.stderr


def test_plan_reads_the_environment_below_its_flags(kvbm_bin):
    # Plan's defaults < KVBM_* < flags: the environment's G1 policy is used, --eviction overrides it.
    env = dict(os.environ, KVBM_G1_EVICTION="s3fifo")
    out = run([kvbm_bin, "plan", "--requests", "20", "--g1-blocks", "100", "--json"], env=env).stdout
    assert json.loads(out)["settings"]["g1_eviction"] == "s3fifo", out
    out = run([kvbm_bin, "plan", "--requests", "20", "--g1-blocks", "100", "--json", "--eviction", "lru"],
              env=env).stdout
    assert json.loads(out)["settings"]["g1_eviction"] == "lru", out
    res = run([kvbm_bin, "plan", "--requests", "20", "--g1-blocks", "100"], code=BAD_INPUT,
              env=dict(os.environ, KVBM_G1_EVICTION="maybe"))
    assert "environment KVBM_G1_EVICTION: g1.eviction must be one of" in res.stderr, res.stderr


# ---- a capacity the process cannot hold is refused with its figure, before allocating (item 11)

def test_a_capacity_beyond_memory_is_refused_before_allocating(kvbm_bin, address_space_limit_works):
    if not address_space_limit_works:
        pytest.skip("a sanitizer build cannot start under an address-space limit (its shadow memory)")
    res = run(["prlimit", "--as=6442450944", kvbm_bin, "replay", "--g1-blocks", "2000000000", "--no-data",
               "--requests", "10"], code=BAD_INPUT, timeout=60)
    assert "need about" in res.stderr and "address-space limit (ulimit -v) of 6.0 GiB" in res.stderr, res.stderr


# ---- one range for block counts: the g*.num_blocks keys' [., 4294967294] on every path (item 11)

MAX_BLOCKS = 4294967294


def test_analysis_paths_take_the_keys_range_of_g1(kvbm_bin):
    # Eviction optimal was capped at 2^31 while g1.num_blocks allowed 4294967294; its pools hold no slots.
    for g1 in ["3000000000", str(MAX_BLOCKS)]:
        out = run([kvbm_bin, "replay", "--requests", "20", "--eviction", "optimal", "--g1-blocks", g1,
                   "--g2-blocks", "0", "--g3-blocks", "0", "--json"]).stdout
        assert json.loads(out)["tiers"]["g1"]["capacity_blocks"] == int(g1)
    res = run([kvbm_bin, "plan", "--requests", "20", "--g1-blocks", "3000000000"], code=BAD_INPUT)
    assert "2^31" not in res.stderr, res.stderr


@pytest.mark.parametrize("args, flag, key", [
    (["replay", "--no-data", "--g1-blocks", "{n}"], "--g1-blocks", "g1.num_blocks"),
    (["replay", "--no-data", "--eviction", "optimal", "--g2-blocks", "0", "--g3-blocks", "0",
      "--g1-blocks", "{n}"], "--g1-blocks", "g1.num_blocks"),
    (["replay", "--no-data", "--g2-blocks", "{n}"], "--g2-blocks", "g2.num_blocks"),
    (["replay", "--no-data", "--g3-blocks", "{n}"], "--g3-blocks", "g3.num_blocks"),
    (["plan", "--g1-blocks", "{n}"], "--g1-blocks", "g1.num_blocks"),
    (["replay", "--no-data", "--sweep", "g1=100,{n}"], "--sweep", "g1 capacity"),
    (["replay", "--no-data", "--sweep", "g2=100,{n}"], "--sweep", "g2 capacity"),
])
def test_block_counts_beyond_the_range_name_flag_and_range(kvbm_bin, args, flag, key):
    for n in [MAX_BLOCKS + 1, 10**30]:
        res = run([kvbm_bin, *[a.format(n=n) for a in args], "--requests", "5"], code=BAD_INPUT, timeout=30)
        assert flag in res.stderr and key in res.stderr, res.stderr
        assert f"[1, {MAX_BLOCKS}]" in res.stderr or f"[0, {MAX_BLOCKS}]" in res.stderr, res.stderr


@pytest.mark.parametrize("tier", ["g2", "g4"])
def test_a_size_beyond_the_block_range_is_refused(kvbm_bin, tier):
    # One-byte blocks: 4096PiB is 2^62 blocks. G4 in bytes was not checked (a --no-data replay models it as
    # a pool that large).
    tiny = [f"--set=model.{k}=1" for k in ["num_layers", "outer_dim", "page_size", "inner_dim", "dtype_bytes"]]
    res = run([kvbm_bin, "config", "check", "-", *tiny, f"--set={tier}.bytes=4096PiB"], code=BAD_INPUT)
    assert f"{tier} capacity must be in [1, {MAX_BLOCKS}] blocks, got 4611686018427387904" in res.stderr, res.stderr
