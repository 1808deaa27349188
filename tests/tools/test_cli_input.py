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
])
def test_negative_unsigned_flags_are_refused(kvbm_bin, tmp_path, args, flag):
    res = run([kvbm_bin, *args], code=BAD_INPUT, cwd=tmp_path, timeout=30)
    assert flag in res.stderr and "unsigned decimal integer" in res.stderr, res.stderr
    assert not (tmp_path / "unused.jsonl").exists()


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
