"""Hypothesis profiles: ``ci`` (default) tries the same examples every run; ``thorough`` explores.

``HYPOTHESIS_PROFILE=thorough`` draws 25 times as many fresh random examples per property and keeps
failures in ``.hypothesis/`` to replay them first next time. Commit each failure it finds as an
``@example`` or a named unit test, so that ``ci`` checks it on every run from then on.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

CI_EXAMPLES = 200
THOROUGH_FACTOR = 25

settings.register_profile(
    "ci",
    # Hypothesis's own CI profile: derandomize (same examples every run, no example database),
    # no deadline, print_blob so a failure's log line alone reproduces it.
    settings.get_profile("ci"),
    max_examples=CI_EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    deadline=None,
    derandomize=False,
    max_examples=CI_EXAMPLES * THOROUGH_FACTOR,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


def budget(ci_examples: int) -> int:
    """``max_examples`` for a property that sets its own: 25 times ``ci_examples`` when thorough."""
    return ci_examples * THOROUGH_FACTOR if PROFILE == "thorough" else ci_examples
