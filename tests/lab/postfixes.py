"""The lab's three Postfix instances: the senders', the forwarder's and the receiver's.

The forwarder runs the set-up docs/postfix.md (part 2, 6., "Local copies untouched")
describes: only outside recipients go through srsfwd's milter, by transport.
"""

from __future__ import annotations

from pathlib import Path

from tests.lab import addresses as at
from tests.lab.processes import PostfixInstance
from tests.lab.zones import SENDER_DOMAINS


def sender_postfix(root: Path) -> PostfixInstance:
    domains = ", ".join(SENDER_DOMAINS)
    mailboxes = "".join(f"alice@{d} {d}/alice/\n" for d in SENDER_DOMAINS)
    milter = f"inet:{at.OPENDKIM}:{at.OPENDKIM_PORT}"
    return PostfixInstance(
        "sender",
        root / "sender",
        main={
            "myhostname": "mx.sender.example",
            "smtp_bind_address": at.SENDER,
            "mynetworks": "127.0.0.1/32",
            "virtual_mailbox_domains": domains,
            "virtual_mailbox_maps": "texthash:$config_directory/mailboxes",
            "smtpd_milters": milter,
            "non_smtpd_milters": milter,
            "milter_default_action": "tempfail",
        },
        master=[
            f"{at.SENDER}:25 inet n - y - - smtpd",
            "smtp unix - - y - - smtp",
        ],
        files={"mailboxes": mailboxes},
    )


#: The forwarder's users: carol has a mailbox; alias forwards outside; team does both.
FORWARDER_ALIASES = (
    f"alias@{at.USERS_DOMAIN} bob@{at.RECEIVER_DOMAIN}\n"
    f"team@{at.USERS_DOMAIN} carol@{at.USERS_DOMAIN}, bob@{at.RECEIVER_DOMAIN}\n"
    f"to-refuser@{at.USERS_DOMAIN} nobody@{at.RECEIVER_DOMAIN}\n"
    f"to-data-refuser@{at.USERS_DOMAIN} data-refuser@{at.RECEIVER_DOMAIN}\n"
    f"to-late-bouncer@{at.USERS_DOMAIN} later@{at.RECEIVER_DOMAIN}\n"
)


def forwarder_postfix(root: Path) -> PostfixInstance:
    """The set-up docs/postfix.md ("Local copies untouched") describes, on lab addresses."""
    milter = f"inet:{at.SRSFWD}:{at.MILTER_PORT}"
    loop = f"{at.FORWARDER_LOOP}:{at.LOOP_PORT}"
    return PostfixInstance(
        "forwarder",
        root / "forwarder",
        main={
            "myhostname": f"mx.{at.SRS_DOMAIN}",
            "mynetworks": f"{at.FORWARDER_LOOP}/32",
            "virtual_mailbox_domains": at.USERS_DOMAIN,
            "virtual_mailbox_maps": f"inline:{{ carol@{at.USERS_DOMAIN}=carol/ }}",
            "virtual_alias_domains": at.SRS_DOMAIN,
            "virtual_alias_maps": "texthash:$config_directory/virtual",
            # Bounces to our SRS addresses go back to the original sender; forged ones
            # are unknown recipients of the SRS domain, refused at RCPT.
            "recipient_canonical_maps": f"socketmap:inet:{at.SRSFWD}:{at.SOCKETMAP_PORT}:reverse",
            "recipient_canonical_classes": "envelope_recipient",
            # Only mail for outside recipients goes through srsfwd; local mailboxes never.
            "default_transport": f"srsfwd-loop:[{at.FORWARDER_LOOP}]:{at.LOOP_PORT}",
            "milter_default_action": "tempfail",
            "milter_header_checks": "regexp:$config_directory/milter_header_checks",
            "smtp_header_checks": "regexp:$config_directory/smtp_header_checks",
            "header_checks": "regexp:$config_directory/header_checks",
            "smtp_bind_address": at.NORMAL_POOL,
            "smtp_helo_name": f"mta1.{at.SRS_DOMAIN}",
            "disable_mime_output_conversion": "yes",
        },
        master=[
            f"{at.FORWARDER}:25 inet n - y - - smtpd",
            f"{loop} inet n - y - - smtpd -o content_filter=smtp:"
            f" -o receive_override_options=no_address_mappings -o smtpd_milters={milter}"
            f" -o mynetworks={at.FORWARDER_LOOP}/32"
            f" -o smtpd_authorized_xforward_hosts={at.FORWARDER_LOOP}/32",
            f"srsfwd-loop unix - - n - - smtp -o smtp_send_xforward_command=yes"
            f" -o smtp_bind_address={at.FORWARDER_LOOP} -o smtp_helo_name=loop.{at.SRS_DOMAIN}",
            "smtp unix - - y - - smtp",
            f"relay-pool unix - - y - - smtp -o smtp_bind_address={at.RELAY_POOL}"
            f" -o smtp_helo_name=rly1.{at.SRS_DOMAIN}",
            f"high-risk-pool unix - - y - - smtp -o smtp_bind_address={at.HIGH_RISK_POOL}"
            f" -o smtp_helo_name=hr1.{at.SRS_DOMAIN}",
        ],
        files={
            "virtual": FORWARDER_ALIASES,
            "milter_header_checks": (
                "/^X-Srsfwd-Pool:[[:space:]]*relay$/ FILTER relay-pool:\n"
                "/^X-Srsfwd-Pool:[[:space:]]*high-risk$/ FILTER high-risk-pool:\n"
            ),
            "smtp_header_checks": "/^X-Srsfwd-Pool:/ IGNORE\n",
            "header_checks": "/^X-Spam-Flag:/ IGNORE\n",
        },
    )


def receiver_postfix(root: Path) -> PostfixInstance:
    milter = f"inet:{at.RSPAMD}:{at.RSPAMD_PORT}"
    domain = at.RECEIVER_DOMAIN
    return PostfixInstance(
        "receiver",
        root / "receiver",
        main={
            "myhostname": f"mx.{domain}",
            "smtp_bind_address": at.RECEIVER,
            "mynetworks": "127.0.0.1/32",
            "virtual_mailbox_domains": domain,
            "virtual_mailbox_maps": "texthash:$config_directory/mailboxes",
            "smtpd_milters": milter,
            "milter_default_action": "tempfail",
            "milter_protocol": "6",
            # A mailbox that refuses at DATA; one that accepts and bounces later.
            "smtpd_data_restrictions": "check_recipient_access texthash:$config_directory/data",
            "transport_maps": "texthash:$config_directory/transport",
            "virtual_alias_maps": "texthash:$config_directory/virtual",
        },
        master=[f"{at.RECEIVER}:25 inet n - y - - smtpd", "smtp unix - - y - - smtp"],
        files={
            "mailboxes": "".join(f"{name}@{domain} {name}/\n" for name in ("bob", "data-refuser")),
            "data": f"data-refuser@{domain} REJECT 5.7.1 refused after DATA\n",
            # later@ is accepted at RCPT (an alias), then its target fails: a later bounce.
            "virtual": f"later@{domain} later@gone.{domain}\n",
            "transport": f"gone.{domain} error:5.2.1 mailbox disabled\n",
        },
    )
