"""Reading ``[decide]`` and ``[pools.*]`` into the decision's ``Policy`` and the pools."""

from __future__ import annotations

from typing import Any

import pytest

from srsfwd.config import Config, config_from_data
from srsfwd.errors import ConfigError
from srsfwd.pool import Pool, PoolSettings
from srsfwd.pool_settings import decide_settings, pools_from_config


def config(data: dict[str, Any]) -> Config:
    return config_from_data(data, None)


def test_decide_table_becomes_the_policy() -> None:
    policy = decide_settings(
        config({"decide": {"accepted-domains": ["a.example"], "aaaa_counts_as_a": False}}),
        ["*.b.example"],
    ).policy
    assert "a.example" in policy.accepted
    assert "x.b.example" in policy.accepted
    assert not policy.aaaa_counts_as_a
    assert policy.srs_domain is None


def test_srs_local_domains_are_accepted_and_the_srs_domain_is_known() -> None:
    policy = decide_settings(
        config({"srs": {"domain": "Fwd.Example.", "local_domains": ["c.example"]}})
    ).policy
    assert policy.srs_domain == "fwd.example"
    assert "c.example" in policy.accepted


def test_decide_settings_for_fact_gathering() -> None:
    settings = decide_settings(
        config(
            {
                "decide": {
                    "trusted_relays": ["10.0.0.0/8"],
                    "trusted-authserv-ids": ["gw.example"],
                    "authserv_id": "fwd.example",
                    "dns_timeout": 2,
                    "accepted_domains": ["a.example"],
                }
            }
        ),
        ["b.example"],
    )
    assert settings.trusted_relays == ("10.0.0.0/8",)
    assert settings.trusted_authserv_ids == ("gw.example",)
    assert (settings.authserv_id, settings.dns_timeout) == ("fwd.example", 2.0)
    assert "b.example" in settings.policy.accepted
    assert decide_settings(config({})).authserv_id is None


def test_an_extra_accepted_domain_that_is_no_domain_is_refused() -> None:
    with pytest.raises(ConfigError, match="accepted domain"):
        decide_settings(config({}), ["not a domain"])


@pytest.mark.parametrize(
    "table",
    [
        {"nope": 1},
        {"accepted_domains": "a.example"},
        {"accepted_domains": ["not a domain"]},
        {"aaaa_counts_as_a": "yes"},
        {"trusted_relays": "10.0.0.0/8"},
        {"trusted_relays": ["gateway"]},
        {"authserv_id": "two words"},
        {"dns_timeout": 0},
        {"dns_timeout": "5"},
    ],
)
def test_bad_decide_table_is_refused_when_loaded(table: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"\[decide\]"):
        config({"decide": table})


def test_decide_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[decide\] must be a table"):
        config({"decide": []})


def test_pools_tables_become_pool_settings() -> None:
    pools = pools_from_config(
        config(
            {
                "pools": {
                    "relay": {
                        "transport": "relaypool",
                        "source_addresses": "192.0.2.9",
                        "helo": "rly1.x",
                    },
                }
            }
        )
    )
    assert pools[Pool.RELAY] == PoolSettings(Pool.RELAY, "relaypool", ("192.0.2.9",), "rly1.x")
    assert pools[Pool.NORMAL].transport == "normal"
    assert pools[Pool.HIGH_RISK].source_addresses == ()


def test_high_risk_has_other_spellings() -> None:
    pools = pools_from_config(config({"pools": {"highrisk": {"transport": "hr"}}}))
    assert pools[Pool.HIGH_RISK].transport == "hr"


@pytest.mark.parametrize(
    ("pools", "key"),
    [
        ([], r"\[pools\] must be a table"),
        ({"fast": {}}, r"unknown table|has no setting 'fast'"),
        ({"normal": []}, r"\[pools.normal\] must be a table"),
        ({"normal": {"bind": "1.2.3.4"}}, "bind"),
        ({"normal": {"source_addresses": ["host.example"]}}, "source_addresses"),
        ({"normal": {"transport": 1}}, "transport"),
    ],
)
def test_bad_pools_table_is_refused_when_loaded(pools: Any, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        config({"pools": pools})


def test_pools_sign_normal_mail_only_by_default() -> None:
    pools = pools_from_config(config({}))
    assert pools[Pool.NORMAL].signs_with == "auto"
    assert pools[Pool.RELAY].signs_with == "none"
    assert pools[Pool.HIGH_RISK].signs_with == "none"


def test_a_pool_can_choose_whose_key_signs() -> None:
    pools = pools_from_config(
        config(
            {
                "pools": {
                    "relay": {"dkim_sign": "srs-domain"},
                    "normal": {"dkim_sign": "none"},
                }
            }
        )
    )
    assert pools[Pool.RELAY].signs_with == "srs-domain"
    assert pools[Pool.NORMAL].signs_with == "none"


@pytest.mark.parametrize(
    "table",
    [
        {"relay": {"dkim_sign": "auto"}},
        {"high-risk": {"dkim_sign": "auto"}},
        {"normal": {"dkim_sign": "yes"}},
        {"normal": {"dkim_sign": True}},
    ],
)
def test_pool_dkim_sign_is_checked(table: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="dkim_sign"):
        config({"pools": table})
