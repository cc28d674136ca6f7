#!/usr/bin/env bash
# The mail lab: Knot DNS, a sending Postfix with OpenDKIM, the forwarder (Postfix with
# srsfwd serve, set up as docs/postfix.md says), a receiving Postfix with rspamd, each on
# its own 127.12.0.x address. Builds it, runs every scenario, prints what the receiver
# decided, stops everything. Needs root (Postfix, port 53) and the packages .ci/run installs.
#   bash examples/lab/run.sh [--keep] [--no-arc] [--dmarc rewrite-from|keep|reject]
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] && python=.venv/bin/python
exec "$python" -m tests.lab "$@"
