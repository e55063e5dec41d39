"""``lookout`` command line: one group, each sub-command in its own module (loaded lazily)."""
from __future__ import annotations

import importlib
import sys

import click

#: sub-command name -> "module:attribute"
COMMANDS = {
    "broker": "streams.commands.broker:broker",
    "topics": "streams.commands.topics:topics",
    "simulate": "streams.commands.simulate:simulate",
    "worker": "streams.commands.worker:worker",
    "correlator": "streams.commands.correlator:correlator",
    "demo": "streams.commands.demo:demo",
    "replay": "streams.commands.replay:replay",
    "tune": "streams.commands.tune:tune",
    "alerts": "streams.commands.alerts:alerts",
    "feedback": "streams.commands.feedback:feedback",
    "silence": "streams.commands.silence:silence",
    "customers": "streams.commands.customers:customers",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            message = f"command {name!r} is unavailable: {exc}"

            def unavailable():
                raise click.ClickException(message)

            return click.Command(name, callback=unavailable, help=f"(unavailable: {exc})")


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(None, "-V", "--version", package_name="lookout", prog_name="lookout")
def cli():
    """Lookout: per-customer anomaly detection for CDN request metrics on Kafka.

    Events (one per customer per interval) arrive on topic `request-metrics`; the worker
    scores every signal with online seasonal models and emits explained, deduplicated
    alerts on topic `alerts`. Replay runs the same detectors over history.

    \b
    Quick start (a local broker, simulated traffic with incidents, live alerts):
      lookout demo
    \b
    The pieces:
      lookout broker start            # local single-node Kafka (KRaft) on 127.0.0.1:9092
      lookout topics create           # request-metrics, alerts, DLQ topics
      lookout worker                  # the detector (Prometheus metrics on :6066/metrics)
      lookout simulate --bootstrap 127.0.0.1:9092 --customers 50 --days 3 --incidents 6
      lookout customers load FILE     # the customer catalogue the correlator groups customers by
      lookout correlator              # the correlator's stages apart (workers: --correlator-stages apart)
      lookout alerts tail             # follow the alerts as they arrive (--json for scripts)
      lookout feedback ALERT_ID --verdict false_alarm   # what an alert was: steer the models
      lookout silence add --customer acme --from +1h --for 4h   # announce a maintenance window
      lookout replay events.jsonl --labels labels.jsonl --out out/

    Settings come from LOOKOUT_* environment variables (e.g. LOOKOUT_BOOTSTRAP) and options.
    """


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="lookout", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
