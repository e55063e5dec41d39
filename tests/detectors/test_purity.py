"""detectors/ must stay pure: no Faust, Kafka or Prometheus imports anywhere in the package."""
import ast
from pathlib import Path

import detectors

FORBIDDEN = ("faust", "kafka", "aiokafka", "prometheus_client", "mode", "streams")


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_detectors_import_no_streaming_or_metrics_code():
    root = Path(detectors.__file__).parent
    offenders = [
        f"{p.relative_to(root.parent)}: {name}"
        for p in sorted(root.rglob("*.py"))
        for name in _imports(p)
        if name.split(".")[0] in FORBIDDEN
    ]
    assert offenders == []


def test_checker_would_catch_an_offender(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import faust\nfrom kafka.admin import KafkaAdminClient\n")
    assert [n.split(".")[0] for n in _imports(bad)] == ["faust", "kafka"]
