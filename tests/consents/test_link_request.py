import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from consents.tokens import customer_from_preference_token, make_preference_token
from tests.consents.people import customer_with_choices
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

URL = "/preferences/"


def _visible(response, email: str) -> str:
    """The page as a visitor sees it, without the per-request CSRF token and the echoed address."""
    html = response.content.decode()
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return html.replace(email, "ADDRESS")


def test_the_link_request_page_asks_for_an_address(client):
    response = client.get(URL)
    assert response.status_code == 200
    assert 'type="email"' in response.content.decode()
    assert "Email me my link" in response.content.decode()


def test_a_known_and_an_unknown_address_get_the_same_answer_in_the_same_way(
    client, purposes, django_assert_num_queries, django_capture_on_commit_callbacks
):
    # given Ada is a customer and nobody has the other address
    CustomerFactory(email="ada@example.com")

    # when both ask for a link
    with django_assert_num_queries(0), django_capture_on_commit_callbacks() as known_callbacks:
        known = client.post(URL, {"email": "ada@example.com"})
    with django_assert_num_queries(0), django_capture_on_commit_callbacks() as unknown_callbacks:
        unknown = client.post(URL, {"email": "nobody@example.com"})

    # then the answers are identical, and the request does the same work (no lookup at all:
    # the task looks the address up later), so neither its text nor its timing tells
    assert known.status_code == unknown.status_code == 200
    assert _visible(known, "ada@example.com") == _visible(unknown, "nobody@example.com")
    assert "If <strong>ada@example.com</strong> is on file" in known.content.decode()
    assert len(known_callbacks) == len(unknown_callbacks) == 1


def test_only_the_known_address_receives_a_working_link(
    client, purposes, eager_celery, django_capture_on_commit_callbacks
):
    ada = CustomerFactory(email="ada@example.com", first_name="Ada")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(URL, {"email": "ADA@Example.com "})
        client.post(URL, {"email": "nobody@example.com"})

    assert [m.to for m in mail.outbox] == [["ada@example.com"]]
    message = mail.outbox[0]
    assert "Hello Ada" in message.body
    link = re.search(r"http://\S+/preferences/(\S+)/", message.body)
    assert link is not None
    assert customer_from_preference_token(link.group(1)) == ada
    assert client.get(link.group(0)).status_code == 200


def test_an_erased_customer_gets_no_link(client, purposes, eager_celery, django_capture_on_commit_callbacks):
    CustomerFactory(email="gone@example.com", erased_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"email": "gone@example.com"})
    assert response.status_code == 200
    assert mail.outbox == []


def test_a_malformed_address_is_refused_with_a_message_and_kept(client):
    response = client.post(URL, {"email": "ada at example"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Enter a valid email address" in html
    assert 'value="ada at example"' in html


def test_too_many_requests_from_one_ip_address_answer_429(client, settings):
    settings.PREFERENCE_LINK_LIMIT_PER_IP = 3
    settings.PREFERENCE_LINK_LIMIT_PER_EMAIL = 100
    answers = [client.post(URL, {"email": f"person{n}@example.com"}).status_code for n in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = client.post(URL, {"email": "someone@example.com"}, REMOTE_ADDR="127.0.0.1")
    assert limited.status_code == 429
    assert "Too many requests" in limited.content.decode()
    assert int(limited["Retry-After"]) > 0
    # another client is not affected
    assert client.post(URL, {"email": "else@example.com"}, REMOTE_ADDR="203.0.113.9").status_code == 200


def test_an_ipv6_client_rotating_through_its_64_is_limited_as_one_client(client, settings):
    settings.PREFERENCE_LINK_LIMIT_PER_IP = 3
    settings.PREFERENCE_LINK_LIMIT_PER_EMAIL = 100
    answers = [
        client.post(URL, {"email": f"person{n}@example.com"}, REMOTE_ADDR=f"2001:db8:7:7::{n:x}").status_code
        for n in range(1, 5)
    ]
    assert answers == [200, 200, 200, 429]
    # the next /64 is someone else
    assert client.post(URL, {"email": "else@example.com"}, REMOTE_ADDR="2001:db8:7:8::1").status_code == 200


def test_a_forged_forwarded_for_does_not_escape_the_limit(client, settings):
    settings.TRUSTED_PROXIES = []
    settings.PREFERENCE_LINK_LIMIT_PER_IP = 2
    settings.PREFERENCE_LINK_LIMIT_PER_EMAIL = 100
    answers = [
        client.post(
            URL, {"email": f"person{n}@example.com"}, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"6.6.6.{n}"
        ).status_code
        for n in range(3)
    ]
    assert answers == [200, 200, 429]


@pytest.mark.redis
def test_with_a_redis_cache_the_limits_are_counted_in_redis(client, settings):
    # CI sets CACHE_URL=redis://...: the counters every web process shares are the ones tested.
    import os

    from django.core.cache import cache

    if not os.environ.get("CACHE_URL", "").startswith("redis://"):
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("REQUIRE_SERVICES=1 but CACHE_URL does not point at Redis")
        pytest.skip("needs CACHE_URL=redis://...")
    settings.PREFERENCE_LINK_LIMIT_PER_IP = 1
    assert client.post(URL, {"email": "ada@example.com"}, REMOTE_ADDR="203.0.113.77").status_code == 200
    redis = cache._cache.get_client(None)
    keys = list(redis.scan_iter(match=f"{cache.key_prefix}:*"))
    assert keys, "no rate-limit counter in Redis"
    assert all(b"ada" not in key and b"203.0.113" not in key for key in keys)
    assert client.post(URL, {"email": "grace@example.com"}, REMOTE_ADDR="203.0.113.77").status_code == 429


def test_too_many_requests_for_one_address_answer_429_from_any_ip_address(client, settings):
    settings.PREFERENCE_LINK_LIMIT_PER_IP = 100
    settings.PREFERENCE_LINK_LIMIT_PER_EMAIL = 2
    answers = [
        client.post(URL, {"email": "Ada@example.com"}, REMOTE_ADDR=f"203.0.113.{n}").status_code for n in range(3)
    ]
    assert answers == [200, 200, 429]
    assert client.post(URL, {"email": "grace@example.com"}, REMOTE_ADDR="203.0.113.50").status_code == 200


def test_the_link_request_url_is_named(client):
    assert reverse("consents:request_link") == URL


def test_the_link_request_answers_without_its_final_slash(client, purposes):
    assert client.post("/preferences", {"email": "nobody@example.com"}).status_code == 200


def test_asking_to_move_to_someones_address_does_not_use_up_their_link_requests(client, purposes, settings):
    settings.PREFERENCE_LINK_LIMIT_PER_EMAIL = 2
    mallory = customer_with_choices("mallory@example.com")
    customer_with_choices("carol@example.com")
    token = make_preference_token(mallory)
    for _ in range(2):
        client.post(f"/preferences/{token}/email/", {"new_email": "carol@example.com"})
    # Carol can still ask for her own link
    assert client.post("/preferences/", {"email": "carol@example.com"}).status_code == 200
