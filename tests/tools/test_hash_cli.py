"""`kvbm hash` checked against an independent implementation of DESIGN.md §1 (python3-xxhash)."""

import random
import struct
import subprocess

import pytest
import xxhash

U64_MAX = (1 << 64) - 1


def salt_hash(salt):
    return 0 if salt == "" else xxhash.xxh3_64_intdigest(salt.encode(), seed=0)


def expected_lines(tokens, block_size, seed):
    lines = []
    parent = None
    for start in range(0, len(tokens) - block_size + 1, block_size):
        block = tokens[start:start + block_size]
        block_hash = xxhash.xxh3_64_intdigest(struct.pack("<%dI" % len(block), *block), seed=seed)
        if parent is None:
            sequence_hash = block_hash
        else:
            sequence_hash = xxhash.xxh3_64_intdigest(struct.pack("<QQ", parent, block_hash), seed=seed)
        parent = sequence_hash
        lines.append(f"{block_hash} {sequence_hash}")
    return lines


def run_hash(kvbm_bin, *args):
    return subprocess.run([kvbm_bin, "hash", *map(str, args)], capture_output=True, text=True, timeout=60)


def output_lines(result):
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_known_vector(kvbm_bin):
    result = run_hash(kvbm_bin, "--block-size", 16, *range(1, 33))
    assert output_lines(result) == [
        "15195734001507359261 15195734001507359261",
        "10782981959423027849 18166693838618995723",
    ]


@pytest.mark.parametrize("case", range(12))
def test_random_tokens_match_python(kvbm_bin, case):
    rng = random.Random(1000 + case)
    block_size = rng.choice([1, 2, 3, 4, 16, 32, 64])
    num_tokens = block_size * rng.randint(1, 6)
    tokens = [rng.randrange(0, 1 << 32) for _ in range(num_tokens)]
    tokens[0] = 0xFFFFFFFF  # a token with every byte set
    args = ["--block-size", block_size]
    seed = 0
    mode = case % 3
    if mode == 1:
        salt = "tenant-%d-%s" % (case, "x" * rng.randint(0, 40))
        args += ["--salt", salt]
        seed = salt_hash(salt)
    elif mode == 2:
        seed = rng.randrange(0, 1 << 64)
        args += ["--salt-hash", seed]
    lines = output_lines(run_hash(kvbm_bin, *args, *tokens))
    assert len(lines) == num_tokens // block_size
    assert lines == expected_lines(tokens, block_size, seed)


def test_partial_tail_prints_no_line(kvbm_bin):
    rng = random.Random(7)
    tokens = [rng.randrange(0, 1 << 32) for _ in range(16 * 3 + 5)]
    lines = output_lines(run_hash(kvbm_bin, "--block-size", 16, "--salt", "s", *tokens))
    assert len(lines) == 3
    assert lines == expected_lines(tokens, 16, salt_hash("s"))
    assert output_lines(run_hash(kvbm_bin, "--block-size", 16, *tokens[:15])) == []


def test_salt_hash_option_equals_salt(kvbm_bin):
    tokens = list(range(100, 132))
    by_salt = output_lines(run_hash(kvbm_bin, "--block-size", 8, "--salt", "lora-a", *tokens))
    by_hash = output_lines(run_hash(kvbm_bin, "--block-size", 8, "--salt-hash", salt_hash("lora-a"), *tokens))
    unsalted = output_lines(run_hash(kvbm_bin, "--block-size", 8, *tokens))
    assert by_salt == by_hash
    assert by_salt != unsalted


def test_max_salt_hash(kvbm_bin):
    tokens = [5, 6, 7, 8]
    lines = output_lines(run_hash(kvbm_bin, "--block-size", 2, "--salt-hash", U64_MAX, *tokens))
    assert lines == expected_lines(tokens, 2, U64_MAX)


@pytest.mark.parametrize("args,field", [
    (["--block-size", "0", "1"], "--block-size"),
    (["--block-size", "x", "1"], "--block-size"),
    (["1", "2"], "--block-size"),
    (["--block-size", "2", "--salt", "a", "--salt-hash", "1", "1", "2"], "--salt"),
    (["--block-size", "2", "--salt-hash", "-1", "1", "2"], "--salt-hash"),
    (["--block-size", "2", "--salt-hash", str(1 << 64), "1", "2"], "--salt-hash"),
    (["--block-size", "2", "1", "4294967296"], "TOKEN"),
    (["--block-size", "2", "1", "abc"], "TOKEN"),
])
def test_bad_input_exits_2_naming_field(kvbm_bin, args, field):
    result = run_hash(kvbm_bin, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert field in result.stderr
    assert result.stdout == ""
