#!/usr/bin/env bash
# Install srsfwd into .venv and run it on the shipped example, with no network (DNS comes
# from examples/example.zone): one message through each outbound pool, a verified bounce
# going home, a forged one refused, and SRS rewrite/reverse on their own.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    [ "$(id -u)" -eq 0 ] && sudo=() || sudo=(sudo)
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-venv python3-pip
fi
# (Re)install when .venv is missing or pyproject.toml changed since: new dependencies.
[ -x .venv/bin/python ] || python3 -m venv .venv
[ .venv/.srsfwd-installed -nt pyproject.toml ] ||
    { .venv/bin/pip install -q -e . && touch .venv/.srsfwd-installed; }
# git keeps no file modes: srsfwd refuses secrets and keys that others can read.
chmod 600 examples/srs.secret examples/keys/*/*.key examples/sender-keys/*/*.key
chmod 700 examples/keys/* examples/sender-keys/*
srsfwd=(.venv/bin/srsfwd)
config=(--config examples/srsfwd.toml)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
forward() {  # forward NAME CLIENT-IP HELO MAIL-FROM RCPT [more srsfwd forward options]
    local name=$1 ip=$2 helo=$3 from=$4 rcpt=$5
    shift 5
    printf '$ srsfwd forward --client-ip %s --helo %s --mail-from "%s" --rcpt %s %s examples/messages/%s.eml\n' \
        "$ip" "$helo" "$from" "$rcpt" "$*" "$name"
    "${srsfwd[@]}" forward "${config[@]}" --client-ip "$ip" --helo "$helo" --mail-from "$from" \
        --rcpt "$rcpt" "$@" -o "$out/$name.eml" "examples/messages/$name.eml" || true
}

step "normal pool: SPF and DKIM of example.org pass, so SRS, our DKIM signature and ARC"
forward normal 198.51.100.25 mail.example.org alice@example.org bob@receiver.example
step "relay pool: unsigned.example's SPF does not list the client, no DKIM: no SRS, not signed by us"
forward relay 192.0.2.99 mx.unsigned.example carol@unsigned.example bob@receiver.example
step "high-risk pool: nowhere.example has no A and no MX record"
forward no-a-no-mx 192.0.2.98 mail.nowhere.example dave@nowhere.example bob@receiver.example
step "high-risk pool: our spam filter said spam (--spam); SRS still follows SPF/DKIM"
forward spam 198.51.100.25 mail.example.org alice@example.org bob@receiver.example --spam
step "normal pool, no SRS: the sender is in our accepted domain example.net"
forward accepted 192.0.2.10 host.example.net frank@example.net bob@receiver.example

address=$("${srsfwd[@]}" rewrite "${config[@]}" alice@example.org)
step "a bounce to $address: verified, reversed, sent home through the high-risk pool"
forward bounce 203.0.113.201 mx.receiver.example "" "$address"
forged="SRS0=AAAA=${address:10:2}=example.org=alice@fwd.example.net"
step "a bounce to a forged SRS address: refused (exit status 1)"
forward bounce 203.0.113.201 mx.receiver.example "" "$forged"

step "the forwarded message, as it leaves (headers):"
sed -n '/^\r\?$/q;p' "$out/normal.eml" | tr -d '\r' | cut -c1-100  # lines end in CRLF

step "SRS on its own: rewrite and reverse"
echo "\$ srsfwd rewrite alice@example.org 'SRS0=opaque+string@hop.example'"
"${srsfwd[@]}" rewrite "${config[@]}" alice@example.org 'SRS0=opaque+string@hop.example'
echo "\$ srsfwd reverse $address"
"${srsfwd[@]}" reverse "${config[@]}" "$address"

step "srsfwd is installed in .venv: to run the README's commands as shown, put it on your PATH"
echo "\$ source .venv/bin/activate"
