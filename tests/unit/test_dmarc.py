"""DMARC records, their discovery through the resolver, and the predicted verdict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.dmarc import (
    DmarcRecord,
    FoundPolicy,
    discover,
    identifier_aligned,
    parse_record,
    predict,
)
from srsfwd.errors import DNSTempError
from tests.dnsserver import ZoneServer


def test_a_record_gives_its_policy_and_defaults() -> None:
    assert parse_record("v=DMARC1; p=reject") == DmarcRecord("reject", "reject", "r", "r", 100)


def test_tags_are_read_whatever_their_case_and_spacing() -> None:
    record = parse_record("v=DMARC1 ;P = Quarantine; sp=none ; adkim=s;aspf=s; pct=20;")
    assert record == DmarcRecord("quarantine", "none", "s", "s", 20)


def test_text_that_does_not_start_with_the_version_is_not_a_record() -> None:
    assert parse_record("p=reject; v=DMARC1") is None
    assert parse_record("v=spf1 -all") is None
    assert parse_record("v=dmarc1; p=reject") is None  # "DMARC1" is case-sensitive


def test_a_missing_or_bad_policy_reads_as_none() -> None:
    assert parse_record("v=DMARC1; rua=mailto:r@example.com") == DmarcRecord("none", "none")
    assert parse_record("v=DMARC1; p=bounce") == DmarcRecord("none", "none")


def test_bad_optional_values_take_their_defaults() -> None:
    record = parse_record("v=DMARC1; p=reject; sp=maybe; adkim=x; pct=250")
    assert record == DmarcRecord("reject", "reject", "r", "r", 100)


@given(st.text(max_size=300))
def test_any_text_parses_to_a_valid_record_or_none(text: str) -> None:
    record = parse_record(text)
    if record is not None:
        assert record.policy in ("none", "quarantine", "reject")
        assert record.subdomain_policy in ("none", "quarantine", "reject")
        assert record.adkim in ("r", "s") and record.aspf in ("r", "s")
        assert 0 <= record.pct <= 100


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=20)), max_size=8))
def test_hostile_tag_lists_after_the_version_never_raise(tags: list[tuple[str, str]]) -> None:
    text = "v=DMARC1;" + ";".join(f"{name}={value}" for name, value in tags)
    assert isinstance(parse_record(text), DmarcRecord)


def test_strict_alignment_wants_the_same_domain() -> None:
    assert identifier_aligned("example.org", "example.org", "s")
    assert not identifier_aligned("mail.example.org", "example.org", "s")


def test_relaxed_alignment_wants_the_same_organizational_domain() -> None:
    assert identifier_aligned("mail.example.org", "news.example.org", "r")
    assert not identifier_aligned("a.co.uk", "b.co.uk", "r")


def test_the_from_domains_own_record_is_found_first(dns_server: ZoneServer) -> None:
    dns_server.load(
        '_dmarc.news.example.org. IN TXT "v=DMARC1; p=quarantine"\n'
        '_dmarc.example.org. IN TXT "v=DMARC1; p=reject"\n'
    )
    found = discover(dns_server.resolver(), "news.example.org")
    assert found is not None and found.domain == "news.example.org"
    assert found.disposition_for("news.example.org") == "quarantine"


def test_a_subdomain_falls_back_to_the_organizational_domains_sp(dns_server: ZoneServer) -> None:
    dns_server.load('_dmarc.example.org. IN TXT "v=DMARC1; p=reject; sp=quarantine"\n')
    found = discover(dns_server.resolver(), "mail.example.org")
    assert found is not None and found.domain == "example.org"
    assert found.disposition_for("mail.example.org") == "quarantine"


def test_other_texts_at_the_name_are_skipped(dns_server: ZoneServer) -> None:
    dns_server.load(
        '_dmarc.example.org. IN TXT "some verification token"\n'
        '_dmarc.example.org. IN TXT "v=DMARC1; p=reject"\n'
    )
    found = discover(dns_server.resolver(), "example.org")
    assert found is not None and found.record.policy == "reject"


def test_two_records_at_one_name_mean_no_policy(dns_server: ZoneServer) -> None:
    dns_server.load(
        '_dmarc.example.org. IN TXT "v=DMARC1; p=reject"\n'
        '_dmarc.example.org. IN TXT "v=DMARC1; p=none"\n'
    )
    assert discover(dns_server.resolver(), "example.org") is None


def test_no_record_anywhere_is_no_policy(dns_server: ZoneServer) -> None:
    assert discover(dns_server.resolver(), "mail.example.org") is None


def test_a_failing_lookup_is_a_temporary_error_not_a_guess(dns_server: ZoneServer) -> None:
    dns_server.failing.add("_dmarc.example.org.")
    with pytest.raises(DNSTempError):
        discover(dns_server.resolver(), "example.org")


REJECT = FoundPolicy(DmarcRecord("reject", "reject"), "example.org")


def test_an_aligned_surviving_signature_passes() -> None:
    verdict = predict(REJECT, "example.org", dkim_domains=["mail.example.org"], spf_domain=None)
    assert verdict.result == "pass" and not verdict.enforced_failure


def test_spf_for_our_srs_domain_does_not_align_with_the_authors_from() -> None:
    verdict = predict(REJECT, "example.org", dkim_domains=[], spf_domain="fwd.example.net")
    assert verdict.result == "fail" and verdict.enforced_failure


def test_strict_dkim_alignment_refuses_a_parent_domains_signature() -> None:
    strict = FoundPolicy(DmarcRecord("reject", "reject", adkim="s"), "mail.example.org")
    verdict = predict(strict, "mail.example.org", dkim_domains=["example.org"], spf_domain=None)
    assert verdict.enforced_failure


def test_a_none_policy_is_no_enforced_failure() -> None:
    none = FoundPolicy(DmarcRecord("none", "none"), "example.org")
    assert not predict(none, "example.org", dkim_domains=[], spf_domain=None).enforced_failure
