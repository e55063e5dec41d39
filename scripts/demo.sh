#!/usr/bin/env bash
# Set up (venv, install, Kafka jars) and run the live demo: a local Kafka broker, a detection
# worker and simulated traffic with one injected incident per kind; alerts print as they arrive.
# Everything it starts is stopped at the end. Extra arguments go to `lookout demo`
# (see `.venv/bin/lookout demo --help`), e.g.  scripts/demo.sh --customers 100
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
exec .venv/bin/lookout demo "$@"
