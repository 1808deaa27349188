"""Issue 8/8: a live manager's GET /metrics, parsed by the official Python client's parser
(prometheus_client, python3-prometheus-client), agrees with the manager's own stats."""
import json
import subprocess
import urllib.error
import urllib.request

import pytest

parser = pytest.importorskip("prometheus_client.parser")


@pytest.fixture
def served(request, tmp_path):
    fixture = request.config.getoption("--fixture")
    proc = subprocess.Popen([fixture, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        stats = json.loads(proc.stdout.readline())
        yield stats
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as res:
        assert res.status == 200
        assert res.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return res.read().decode()


def test_scrape_parses_and_matches_stats(served):
    text = scrape(served["port"])
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    # The client strips _total from counter family names.
    assert families["kvbm_match_requests"].type == "counter"
    assert families["kvbm_pool_blocks"].type == "gauge"
    assert families["kvbm_offload_batch_seconds"].type == "histogram"

    def value(name, **labels):
        found = [s.value for f in families.values() for s in f.samples if s.name == name and s.labels == labels]
        assert len(found) == 1, (name, labels, found)
        return found[0]

    assert value("kvbm_match_requests_total") == served["requests"]
    for tier in ("g1", "g2", "g3"):
        assert value("kvbm_match_hit_blocks_total", tier=tier) == served[f"hits_{tier}"]
    assert served["hits_g1"] + served["hits_g2"] + served["hits_g3"] > 0
    assert value("kvbm_offload_blocks_total", src="g1", dst="g2") == served["g1_to_g2"] > 0
    assert value("kvbm_offload_blocks_total", src="g2", dst="g3") == served["g2_to_g3"]
    assert value("kvbm_onboard_blocks_total", src="g2", dst="g1") == served["g2_to_g1"]
    assert value("kvbm_onboard_blocks_total", src="g3", dst="g1") == served["g3_to_g1"]
    assert value("kvbm_offload_bytes_total") == served["bytes_down"]
    assert value("kvbm_pool_blocks", tier="g1", state="inactive") == served["g1_inactive"]
    assert value("kvbm_pool_blocks", tier="g1", state="free") == served["g1_free"]
    assert value("kvbm_pool_blocks", tier="g2", state="inactive") == served["g2_inactive"]
    assert value("kvbm_pool_blocks", tier="g2", state="free") == served["g2_free"]
    # Histogram: cumulative buckets ending at +Inf == _count.
    buckets = [s for s in families["kvbm_offload_batch_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["src"] == "g1"]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)
    assert buckets[-1].labels["le"] == "+Inf"
    assert buckets[-1].value == value("kvbm_offload_batch_seconds_count", src="g1", dst="g2") > 0


def test_unknown_path_is_404(served):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{served['port']}/nope", timeout=10)
    assert e.value.code == 404


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_replay_metrics_port_flag(request, tmp_path):
    kvbm = request.config.getoption("--kvbm")
    if not kvbm:
        pytest.skip("--kvbm not given")
    # The offline optimum replays no manager to serve metrics: a flag error.
    bad = subprocess.run([kvbm, "replay", "--no-data", "--eviction", "optimal", "--g2-blocks", "0", "--g3-blocks",
                          "0", "--metrics-port", "9400", "--requests", "10"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "--metrics-port" in bad.stderr
    # Data mode: the manager serves while replaying and says where.
    port = free_port()
    ok = subprocess.run([kvbm, "replay", "--metrics-port", str(port), "--requests", "50", "--g3-dir", str(tmp_path)],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert f"metrics on http://0.0.0.0:{port}/metrics" in ok.stderr
