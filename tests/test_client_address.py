"""The client's address: X-Forwarded-For only from our own proxies, and IPv6 counted by /64."""

import pytest

from common.client import client_ip, client_ip_for_limits


@pytest.fixture
def behind_our_proxies(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8:ffff::1"]


def test_without_trusted_proxies_a_forged_forwarded_for_is_ignored(rf, settings):
    settings.TRUSTED_PROXIES = []
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # behind TLS says nothing of trust
    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6", REMOTE_ADDR="198.51.100.7")
    assert client_ip(request) == "198.51.100.7"


def test_a_forwarded_for_from_an_address_that_is_not_our_proxy_is_ignored(rf, behind_our_proxies):
    # Mallory connects directly and claims to be someone else.
    request = rf.get("/", HTTP_X_FORWARDED_FOR="203.0.113.9", REMOTE_ADDR="198.51.100.7")
    assert client_ip(request) == "198.51.100.7"


def test_behind_our_proxy_the_client_is_the_rightmost_address_that_is_not_ours(rf, behind_our_proxies):
    # Mallory sends "X-Forwarded-For: 6.6.6.6"; our two proxies append what they saw.
    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9, 10.1.2.3", REMOTE_ADDR="10.0.0.2")
    assert client_ip(request) == "203.0.113.9"


def test_behind_our_ipv6_proxy_the_forwarded_address_is_used(rf, behind_our_proxies):
    request = rf.get("/", HTTP_X_FORWARDED_FOR="2001:db8:1:2::99", REMOTE_ADDR="2001:db8:ffff::1")
    assert client_ip(request) == "2001:db8:1:2::99"


def test_a_forwarded_value_that_is_no_address_is_an_unknown_client(rf, behind_our_proxies):
    assert client_ip(rf.get("/", HTTP_X_FORWARDED_FOR="not-an-address", REMOTE_ADDR="10.0.0.2")) is None


def test_requests_through_our_proxy_alone_are_the_proxys_address(rf, behind_our_proxies):
    assert client_ip(rf.get("/", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"


def test_limits_count_an_ipv6_client_by_its_64_and_an_ipv4_client_by_its_address(rf, settings):
    settings.TRUSTED_PROXIES = []
    one = rf.get("/", REMOTE_ADDR="2001:db8:1:2:aaaa::1")
    other = rf.get("/", REMOTE_ADDR="2001:db8:1:2:ffff:ffff:ffff:ffff")
    neighbour = rf.get("/", REMOTE_ADDR="2001:db8:1:3::1")
    assert client_ip_for_limits(one) == client_ip_for_limits(other) == "2001:db8:1:2::"
    assert client_ip_for_limits(neighbour) == "2001:db8:1:3::"
    assert client_ip_for_limits(rf.get("/", REMOTE_ADDR="203.0.113.9")) == "203.0.113.9"
    # The consent proof keeps the address itself.
    assert client_ip(one) == "2001:db8:1:2:aaaa::1"


def test_a_bad_trusted_proxy_setting_stops_the_site_with_one_clear_sentence():
    from tests.test_settings import run_manage

    result = run_manage("check", env_overrides={"TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"})
    assert result.returncode != 0
    assert "TRUSTED_PROXIES: 'proxy.internal' is not an IP address or CIDR network." in result.stderr
