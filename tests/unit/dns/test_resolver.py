"""The resolver against a real DNS server on 127.0.0.1 and in zone-file mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from srsfwd.clock import FrozenClock
from srsfwd.dns.resolver import MXRecord, Resolver
from srsfwd.errors import ConfigError, DNSTempError
from tests.dnsserver import ZoneServer

ZONE = """\
$ORIGIN example.com.
$TTL 300
@               IN MX  20 mx2
@               IN MX  10 mx1
mx1             IN A    192.0.2.1
mx1             IN AAAA 2001:db8::1
sel._domainkey  IN TXT ( "v=DKIM1; k=rsa; "
                         "p=abc" )
two             IN TXT "first"
two             IN TXT "second"
alias           IN CNAME mx1
"""

LONG = "x" * 255


def test_txt_joins_the_strings_of_one_record(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    assert dns_server.resolver().txt("sel._domainkey.example.com") == [b"v=DKIM1; k=rsa; p=abc"]


def test_txt_returns_every_record(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    assert sorted(dns_server.resolver().txt("two.example.com.")) == [b"first", b"second"]


def test_mx_sorted_by_preference(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    assert dns_server.resolver().mx("example.com") == [
        MXRecord(10, "mx1.example.com."),
        MXRecord(20, "mx2.example.com."),
    ]


def test_addresses_gives_ipv4_then_ipv6(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    assert dns_server.resolver().addresses("mx1.example.com") == ["192.0.2.1", "2001:db8::1"]


def test_nxdomain_is_an_empty_answer(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    assert dns_server.resolver().txt("nothing.example.com") == []


def test_no_data_is_an_empty_answer(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    assert dns_server.resolver().txt("mx1.example.com") == []


def test_servfail_raises_temporary_error(dns_server: ZoneServer) -> None:
    dns_server.mode = "servfail"
    with pytest.raises(DNSTempError) as caught:
        dns_server.resolver().txt("sel._domainkey.example.com")
    assert caught.value.temporary


def test_silent_server_raises_temporary_error_after_timeout(dns_server: ZoneServer) -> None:
    dns_server.mode = "silent"
    with pytest.raises(DNSTempError, match="timeout"):
        dns_server.resolver(timeout=0.3).txt("sel._domainkey.example.com")


def test_large_record_comes_over_tcp(dns_server: ZoneServer) -> None:
    strings = " ".join(f'"{LONG}"' for _ in range(8))
    dns_server.load(f"big.example.com. 60 IN TXT ( {strings} )")
    assert dns_server.resolver().txt("big.example.com") == [LONG.encode() * 8]


def test_answers_are_cached_for_their_ttl(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    clock = FrozenClock(1_000_000)
    resolver = dns_server.resolver(clock=clock)
    resolver.txt("two.example.com")
    dns_server.clear()
    assert len(resolver.txt("two.example.com")) == 2
    clock.advance(301)
    assert resolver.txt("two.example.com") == []


def test_temporary_errors_are_not_cached(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    resolver = dns_server.resolver()
    dns_server.mode = "servfail"
    with pytest.raises(DNSTempError):
        resolver.txt("two.example.com")
    dns_server.mode = "answer"
    assert len(resolver.txt("two.example.com")) == 2


def test_invalid_name_is_an_empty_answer_without_a_query(dns_server: ZoneServer) -> None:
    assert dns_server.resolver().txt("a" * 70 + ".example.com") == []
    assert dns_server.queries == []


def test_bad_nameserver_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Resolver(nameservers=["dns.example.com"])


def test_zone_file_mode_answers_without_network(tmp_path: Path) -> None:
    zone = tmp_path / "test.zone"
    zone.write_text(ZONE + "$ORIGIN example.org.\nwww 60 IN CNAME mx1.example.com.\n")
    resolver = Resolver.from_zone_file(zone)
    assert resolver.txt("sel._domainkey.example.com") == [b"v=DKIM1; k=rsa; p=abc"]
    assert resolver.addresses("www.example.org") == ["192.0.2.1", "2001:db8::1"]
    assert resolver.mx("example.com")[0] == MXRecord(10, "mx1.example.com.")
    assert resolver.txt("missing.example.com") == []


def test_zone_file_that_is_not_a_master_file_is_a_config_error(tmp_path: Path) -> None:
    zone = tmp_path / "bad.zone"
    zone.write_text("this is not ( a zone\n")
    with pytest.raises(ConfigError, match="not a master file"):
        Resolver.from_zone_file(zone)


def test_missing_zone_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Resolver.from_zone_file(tmp_path / "none.zone")


def test_zone_text_mode_answers_without_files() -> None:
    resolver = Resolver.from_zone_text('x.example.com. IN TXT "hello"\n')
    assert resolver.txt("x.example.com") == [b"hello"]


BIND_ZONE = """\
$ORIGIN example.
$TTL 3600
@           IN SOA  ns1 hostmaster 2026120601 7200 3600 1209600 300
@           IN NS   ns1
ns1         IN A    192.0.2.53
@           IN TXT  "v=spf1 -all"
*.mail      IN TXT  "v=spf1 ip4:192.0.2.25 -all"
*.mail      IN MX   10 ns1
real.mail   IN TXT  "real"
*           IN A    192.0.2.80
"""


def test_zone_file_with_soa_and_ns_at_its_origin_is_accepted(tmp_path: Path) -> None:
    zone = tmp_path / "example.zone"
    zone.write_text(BIND_ZONE)
    resolver = Resolver.from_zone_file(zone)
    assert resolver.txt("example") == [b"v=spf1 -all"]
    assert resolver.records("example", "NS") == ["ns1.example."]
    assert resolver.addresses("ns1.example") == ["192.0.2.53"]


def test_wildcard_answers_for_names_below_it() -> None:
    resolver = Resolver.from_zone_text(BIND_ZONE)
    assert resolver.txt("a.mail.example") == [b"v=spf1 ip4:192.0.2.25 -all"]
    assert resolver.mx("b.c.mail.example") == [MXRecord(10, "ns1.example.")]


def test_wildcard_does_not_cover_names_that_exist() -> None:
    resolver = Resolver.from_zone_text(BIND_ZONE)
    assert resolver.txt("real.mail.example") == [b"real"]
    assert resolver.mx("real.mail.example") == []


def test_wildcard_applies_only_at_the_closest_existing_name() -> None:
    resolver = Resolver.from_zone_text(BIND_ZONE)
    assert resolver.addresses("other.example") == ["192.0.2.80"]
    assert resolver.addresses("x.real.mail.example") == []  # real.mail exists, no *.real.mail


def test_zone_answers_stay_the_same_when_asked_again() -> None:
    resolver = Resolver.from_zone_text(BIND_ZONE)
    for _ in range(2):
        assert resolver.txt("A.Mail.Example.") == [b"v=spf1 ip4:192.0.2.25 -all"]
        assert resolver.txt("real.mail.example") == [b"real"]
        assert resolver.txt("nothing.real.mail.example") == []


def test_a_cname_loop_in_a_zone_fails_each_time_it_is_asked() -> None:
    resolver = Resolver.from_zone_text(
        "a.example. IN CNAME b.example.\nb.example. IN CNAME a.example.\n"
    )
    for _ in range(2):
        with pytest.raises(DNSTempError, match="CNAME loop"):
            resolver.txt("a.example")


def test_zone_files_may_be_given_as_strings(tmp_path: Path) -> None:
    zone = tmp_path / "example.zone"
    zone.write_text(BIND_ZONE)
    assert Resolver.from_zone_file(str(zone)).addresses("ns1.example") == ["192.0.2.53"]


def test_one_file_may_hold_several_zones_each_with_its_soa() -> None:
    resolver = Resolver.from_zone_text(
        "example.com. IN SOA ns.example.com. h.example.com. 1 2 3 4 5\n"
        'example.com. IN TXT "com"\n'
        "example.org. IN SOA ns.example.org. h.example.org. 1 2 3 4 5\n"
        'example.org. IN TXT "org"\n'
    )
    assert resolver.txt("example.com") + resolver.txt("example.org") == [b"com", b"org"]


def test_include_directive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other.zone").write_text('x.example. IN TXT "included"\n')
    with pytest.raises(ConfigError, match="not a master file"):
        Resolver.from_zone_text(f"$INCLUDE {tmp_path / 'other.zone'}\n")


@pytest.mark.parametrize("mode", ["servfail", "refused"])
def test_a_failing_server_is_described_by_its_answer_not_its_address(
    dns_server: ZoneServer, mode: str
) -> None:
    # The text goes into SMTP replies: it must not tell clients where our resolver is.
    dns_server.mode = mode  # type: ignore[assignment]
    with pytest.raises(DNSTempError) as error:
        dns_server.resolver().mx("example.com")
    assert str(error.value) == f"DNS servers failed for MX example.com.: {mode.upper()}"
