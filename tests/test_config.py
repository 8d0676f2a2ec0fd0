"""``check-config`` names every error by path and expectation; ``serve`` refuses the same."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lookout.config import ConfigError, load_config
from tests.conftest import ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lookout.cli", *args], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=60)


def test_defaults_match_the_documented_ports():
    cfg = load_config()
    assert cfg.data_dir == "./lookout-data"
    assert cfg.listen.otlp_grpc.endswith(":4317") and cfg.listen.otlp_http.endswith(":4318")
    assert cfg.listen.http.endswith(":3000") and cfg.listen.health.endswith(":13133")
    assert cfg.storage.retention == 30 * 86400


def test_every_error_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("storage:\n  retention: forever\n  flush_size: lots\nlisten:\n  http: nowhere\n"
                   "wal:\n  fsync: maybe\nsurprise: 1\n")
    with pytest.raises(ConfigError) as ei:
        load_config(bad)
    problems = ei.value.problems
    assert 'storage.retention: expected a duration like 30d, got "forever"' in problems
    assert any(p.startswith("storage.flush_size:") for p in problems)
    assert any(p.startswith("listen.http: expected HOST:PORT") for p in problems)
    assert any(p.startswith("wal.fsync: expected true or false") for p in problems)
    assert any(p.startswith("surprise: unknown setting") for p in problems)

    out = run_cli("check-config", str(bad))
    assert out.returncode == 1
    assert 'storage.retention: expected a duration like 30d, got "forever"' in out.stderr
    served = run_cli("serve", "--config", str(bad))
    assert served.returncode == 1 and "storage.retention" in served.stderr


def test_example_config_is_valid():
    out = run_cli("check-config", str(ROOT / "lookout.example.yaml"))
    assert out.returncode == 0, out.stderr


def test_invalid_yaml_points_at_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("storage:\n  retention: [\n")
    with pytest.raises(ConfigError) as ei:
        load_config(bad)
    assert "invalid YAML at line" in str(ei.value)


def test_flags_override_the_file(tmp_path):
    cfg = load_config(None, {"listen.http": "127.0.0.1:9999", "data_dir": str(tmp_path)})
    assert cfg.listen.http == "127.0.0.1:9999" and cfg.data_dir == str(tmp_path)
