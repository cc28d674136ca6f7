"""A store URL in an error message never shows its password (it is logged at start and
at every reload that fails)."""

from __future__ import annotations

import pytest

from srsfwd.errors import ConfigError, StoreError
from srsfwd.logtext import without_password
from srsfwd.stores import check_location
from srsfwd.stores.redis import RedisStore

PASSWORD = "s3cret-pw"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://user:{PASSWORD}@127.0.0.1:notaport/0",
        f"redis://:{PASSWORD}@[::1/0",
        f"rediss://:{PASSWORD}@host:port/0",
    ],
)
def test_a_bad_redis_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(StoreError) as error:
        RedisStore.from_url(url)
    assert PASSWORD not in str(error.value)
    assert "(redacted)" in str(error.value)


def test_an_unknown_store_url_is_refused_without_its_password() -> None:
    with pytest.raises(ConfigError) as error:
        check_location(f"mysql://app:{PASSWORD}@db.example/srs")
    assert PASSWORD not in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:pw@h:1/0", "redis://:(redacted)@h:1/0"),
        ("redis://u:pw@h/0 and more", "redis://u:(redacted)@h/0 and more"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("/var/lib/srsfwd/limits.sqlite", "/var/lib/srsfwd/limits.sqlite"),
    ],
)
def test_without_password_hides_only_the_password(text: str, expected: str) -> None:
    assert without_password(text) == expected
