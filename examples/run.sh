#!/usr/bin/env bash
# Install srsfwd into .venv and run it on the shipped example: rewrite senders with SRS,
# reverse them, and check a genuine and a forged bounce. No network is needed after pip.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    [ "$(id -u)" -eq 0 ] && sudo=() || sudo=(sudo)
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-venv python3-pip
fi
[ -x .venv/bin/srsfwd ] || { python3 -m venv .venv && .venv/bin/pip install -q -e .; }
chmod 600 examples/srs.secret   # git does not keep file modes; srsfwd refuses open secrets
srsfwd=(.venv/bin/srsfwd)
config=(--config examples/srsfwd.toml)

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step srsfwd rewrite "${config[@]}" alice@example.org 'SRS0=opaque+string@hop.example' carol@example.net
"${srsfwd[@]}" rewrite "${config[@]}" alice@example.org 'SRS0=opaque+string@hop.example' \
    carol@example.net | tee /tmp/srsfwd-example.$$
address=$(head -n 1 /tmp/srsfwd-example.$$)
rm -f /tmp/srsfwd-example.$$

step srsfwd reverse "${config[@]}" "$address"
"${srsfwd[@]}" reverse "${config[@]}" "$address"

step srsfwd bounce "${config[@]}" --rcpt "$address" examples/bounce.eml
"${srsfwd[@]}" bounce "${config[@]}" --rcpt "$address" examples/bounce.eml

forged="SRS0=AAAA=${address:10:2}=example.org=alice@fwd.example.net"
step srsfwd bounce "${config[@]}" --rcpt "$forged" examples/bounce.eml "(a forgery: exit 1)"
"${srsfwd[@]}" bounce "${config[@]}" --rcpt "$forged" examples/bounce.eml || true
