"""Bad values of the failover and restart policies are refused at the boundary with INVALID_VALUE
and change nothing (NaN, infinities, negative or absurd durations, empty or malformed
windows); before this, `failback_window: []` passed and then raised inside failback_moves, and a
restart delay of inf, 1e300 or NaN, or a NaN period_hours, were stored."""
import math

import pytest

from test_groups_core import ok, refused, world

BAD_FAILOVER = [
    {"failback_window": []}, {"failback_window": [3]}, {"failback_window": [1, 2, 3]},
    {"failback_window": ["1", 2]}, {"failback_window": [1.5, 2]}, {"failback_window": [True, 2]},
    {"failback_window": None}, {"failback_window": "0-6"},
    {"period_hours": math.nan}, {"period_hours": math.inf}, {"period_hours": 1e300},
    {"threshold": math.nan}, {"threshold": 1e300}, {"threshold": 2.5}, {"threshold": True},
]


@pytest.mark.parametrize("value", BAD_FAILOVER, ids=repr)
def test_a_bad_failover_policy_is_refused_and_changes_nothing(value):
    s = world()
    refused(s, "group.set", "INVALID_VALUE", group="g-web", field="failover", value=value)


BAD_RESTART = [
    {"delay": math.inf}, {"delay": 1e300}, {"delay": math.nan}, {"delay": -math.inf},
    {"period": math.nan}, {"period": math.inf}, {"period": 1e300},
    {"threshold": math.nan}, {"threshold": math.inf}, {"threshold": 1e300}, {"threshold": 1.5},
]


@pytest.mark.parametrize("value", BAD_RESTART, ids=repr)
def test_a_bad_restart_policy_is_refused_and_changes_nothing(value):
    s = world()
    refused(s, "resource.set", "INVALID_VALUE", resource="r-httpd", restart=value)


@pytest.mark.parametrize("value", [{"monitor_interval": math.nan}, {"monitor_interval": math.inf}])
def test_a_bad_monitor_interval_is_refused(value):
    s = world()
    refused(s, "resource.set", "INVALID_VALUE", resource="r-httpd", **value)


def test_good_policies_at_their_limits_are_taken():
    s = world()
    ok(s, "group.set", group="g-web", field="failover",
       value={"failback": "window", "failback_window": [23, 0], "period_hours": 24 * 365, "threshold": 1000})
    ok(s, "resource.set", resource="r-httpd", restart={"delay": 3600, "period": 7 * 86400.0, "threshold": 1000})
    assert s["resources"]["r-httpd"]["restart"]["delay"] == 3600
