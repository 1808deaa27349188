"""`kvbm config check` (every error, one per line, or the resolved TOML) and the precedence of the
configuration layers on the command line: defaults < FILE < KVBM_* environment < --set."""

import os
import subprocess

import pytest


def run(kvbm_bin, *args, env=None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KVBM_")}
    clean.update(env or {})
    return subprocess.run([kvbm_bin, *map(str, args)], capture_output=True, text=True, timeout=60, env=clean)


def resolved(stdout):
    """The resolved TOML as {"section.key": "value"}."""
    out, section = {}, ""
    for line in stdout.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]") + "."
            continue
        key, _, value = line.partition(" = ")
        out[section + key] = value
    return out


def test_check_prints_every_error(kvbm_bin, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[model]\npage_size = 0\n[g1]\neviction = "fifo"\nbytes = "12 parsecs"\nnum_block = 3\n'
                    '[g2]\nmemory = "device"\n')
    result = run(kvbm_bin, "config", "check", path, "--set", "offload.batch_blocks=0",
                 env={"KVBM_G3_DIRECT_IO": "perhaps"})
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 7, result.stderr
    assert result.stderr.splitlines()[0] == "kvbm config check: 7 errors"
    # In the file's order, then the environment, then --set; each names its key and what is allowed.
    assert f"{path}: model.page_size must be an integer in [1, 65536], got '0'" in errors[0]
    assert "g1.eviction must be one of lru, priority_lru" in errors[1]
    assert "g1.bytes: size \"12 parsecs\" has an unknown unit" in errors[2] and "GiB" in errors[2]
    assert "unknown configuration key 'g1.num_block'; did you mean g1.num_blocks? known keys in [g1]: " in errors[3]
    assert "model.page_size" not in errors[3]
    assert "g2.memory must be one of system, pinned" in errors[4]
    assert ("environment KVBM_G3_DIRECT_IO: g3.direct_io must be true or false (also 1 or 0, yes or no, on or off), "
            "got 'perhaps'") in errors[5]
    assert "--set offload.batch_blocks=0: offload.batch_blocks must be an integer in [1, 65536]" in errors[6]
    assert result.stdout == ""


def test_check_reports_cross_key_errors_together(kvbm_bin, tmp_path):
    path = tmp_path / "tiers.toml"
    path.write_text('[g1]\nbytes = "1KiB"\n[g3]\nnum_blocks = 8\nlayout = "layer_separate"\n')
    result = run(kvbm_bin, "config", "check", path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, result.stderr
    assert "g1.bytes = 1024 is smaller than one block" in errors[0]
    assert "g3 needs a g2 tier" in errors[1]
    assert "g3.layout must be fully_contiguous" in errors[2]


def test_check_prints_the_resolved_configuration(kvbm_bin, tmp_path):
    path = tmp_path / "good.toml"
    path.write_text('[model]\npage_size = 32\nnum_layers = 4\n[g1]\nbytes = "16GiB"\neviction = "lru"\n'
                    '[g2]\nnum_blocks = 100\n')
    result = run(kvbm_bin, "config", "check", path)
    assert result.returncode == 0, result.stderr
    config = resolved(result.stdout)
    assert config["model.page_size"] == "32"
    assert config["g1.bytes"] == f'"{16 << 30}"'
    assert config["g2.num_blocks"] == "100"
    # The output is itself a valid configuration that resolves to the same text.
    again_path = tmp_path / "resolved.toml"
    again_path.write_text(result.stdout)
    again = run(kvbm_bin, "config", "check", again_path)
    assert again.returncode == 0, again.stderr
    assert resolved(again.stdout) == config


def test_precedence_file_environment_set(kvbm_bin, tmp_path):
    path = tmp_path / "layers.toml"
    path.write_text('[model]\npage_size = 32\nnum_layers = 2\n[g1]\nnum_blocks = 4\neviction = "lru"\n')
    env = {"KVBM_G1_EVICTION": "priority_lru", "KVBM_MODEL_PAGE_SIZE": "64"}
    result = run(kvbm_bin, "config", "check", path, "--set", "model.page_size=128", env=env)
    assert result.returncode == 0, result.stderr
    config = resolved(result.stdout)
    assert config["model.num_layers"] == "2"            # file over default
    assert config["model.inner_dim"] == "128"           # default
    assert config["g1.eviction"] == '"priority_lru"'    # environment over file
    assert config["model.page_size"] == "128"           # --set over environment
    # Without a file: defaults < environment < --set.
    result = run(kvbm_bin, "config", "check", "-", "--set", "g1.num_blocks=7", "--set", "g1.num_blocks=9", env=env)
    assert result.returncode == 0, result.stderr
    config = resolved(result.stdout)
    assert config["g1.num_blocks"] == "9"                # the last --set wins
    assert config["model.page_size"] == "64"


def test_missing_file(kvbm_bin, tmp_path):
    result = run(kvbm_bin, "config", "check", tmp_path / "absent.toml")
    assert result.returncode == 2
    assert "cannot open configuration file" in result.stderr


def test_replay_set_flag(kvbm_bin, tmp_path):
    """`kvbm replay --set` is the last layer; a bad one names the key and exits 2."""
    bad = run(kvbm_bin, "replay", "--requests", "5", "--no-data", "--set", "g1.eviction=fifo")
    assert bad.returncode == 2
    assert "--set g1.eviction=fifo: g1.eviction must be one of" in bad.stderr
    bad_env = run(kvbm_bin, "replay", "--requests", "5", "--no-data", env={"KVBM_G1_NUM_BLOCKS": "x"})
    assert bad_env.returncode == 2
    assert "environment KVBM_G1_NUM_BLOCKS" in bad_env.stderr
    ok = run(kvbm_bin, "replay", "--requests", "20", "--json", "--set", "g1.num_blocks=64",
             "--set", "g2.num_blocks=0", "--set", "g3.num_blocks=0")
    assert ok.returncode == 0, ok.stderr
