"""``lookout customers load``: a bad file is refused whole, before Kafka is asked anything."""
from __future__ import annotations

from click.testing import CliRunner

from streams.cli import cli


def test_a_bad_catalogue_is_not_published_and_every_bad_line_is_named(tmp_path):
    f = tmp_path / "customers.csv"
    f.write_text("customer_id,plan\nacme,pro\n,free\nbad id,pro\n")
    r = CliRunner().invoke(cli, ["customers", "load", str(f), "--bootstrap", "127.0.0.1:1"])
    assert r.exit_code == 1
    assert "2 bad lines" in r.output and "line 3: customer_id is required" in r.output
    assert "line 4: customer_id must be" in r.output and "Kafka" not in r.output


def test_a_bad_removal_is_a_usage_error(tmp_path):
    f = tmp_path / "customers.jsonl"
    f.write_text('{"customer_id": "acme", "plan": "pro"}\n')
    r = CliRunner().invoke(cli, ["customers", "load", str(f), "--remove", "no such id!"])
    assert r.exit_code == 2 and "--remove" in r.output


def test_a_missing_file_says_so(tmp_path):
    r = CliRunner().invoke(cli, ["customers", "load", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 1 and "customers file not found" in r.output
