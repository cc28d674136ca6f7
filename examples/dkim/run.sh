#!/usr/bin/env bash
# DKIM and ARC with srsfwd, no network: make keys in a scratch folder, sign, verify against
# a zone file built from the keys' .txt files, seal, and verify the RFC 8463 example.
set -euo pipefail
cd "$(dirname "$0")/../.."
# (Re)install when .venv is missing or pyproject.toml changed since: new dependencies.
[ -x .venv/bin/python ] || python3 -m venv .venv
[ .venv/.srsfwd-installed -nt pyproject.toml ] ||
    { .venv/bin/pip install -q -e . && touch .venv/.srsfwd-installed; }
srsfwd=.venv/bin/srsfwd
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step srsfwd keygen --keys-dir "$work/keys" example.com
"$srsfwd" keygen --keys-dir "$work/keys" example.com
"$srsfwd" keygen --keys-dir "$work/keys" --algorithm ed25519 example.com >/dev/null
cat "$work"/keys/example.com/*.txt > "$work/example.zone"

step srsfwd keys list --keys-dir "$work/keys"
"$srsfwd" keys list --keys-dir "$work/keys"

printf 'From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: Hello\n\nHi Bob.\n' \
    > "$work/message.eml"
step srsfwd sign --keys-dir "$work/keys" message.eml
"$srsfwd" sign --keys-dir "$work/keys" "$work/message.eml" | tee "$work/signed.eml"

step srsfwd verify --zone example.zone signed.eml
"$srsfwd" verify --zone "$work/example.zone" "$work/signed.eml"

step srsfwd verify --zone example.zone "(a changed body: exit 1)"
sed 's/Hi Bob/Hi Rob/' "$work/signed.eml" | "$srsfwd" verify --zone "$work/example.zone" || true

step srsfwd seal --authserv-id fwd.example.net --keys-dir "$work/keys" --zone example.zone signed.eml
"$srsfwd" seal --authserv-id fwd.example.net --keys-dir "$work/keys" \
    --zone "$work/example.zone" "$work/signed.eml" | head -n 20

step srsfwd verify --zone examples/dkim/football.zone examples/dkim/rfc8463.eml
"$srsfwd" verify --zone examples/dkim/football.zone examples/dkim/rfc8463.eml
