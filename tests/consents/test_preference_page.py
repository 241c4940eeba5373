"""The preference page: choices per purpose, the ledger events they record, and the policy text."""

import re

import pytest

from consents.models import ConsentEvent, PolicyVersion, Source
from consents.services import consent_withdraw
from consents.tokens import make_preference_token
from tests.consents.people import customer_with_choices

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Chromium/130"


@pytest.fixture
def ada(purposes):
    """Ada takes the newsletter, said no to promotions, and was never asked about the rest."""
    return customer_with_choices("ada@example.com", granted=["newsletter"], withdrawn=["promotions"])


def page_url(customer) -> str:
    return f"/preferences/{make_preference_token(customer)}/"


def states(customer) -> dict[str, bool]:
    return {c.purpose.code: c.granted for c in customer.consents.select_related("purpose")}


def test_the_page_shows_each_purpose_with_its_wording_and_current_state(client, ada, purposes):
    html = client.get(page_url(ada)).content.decode()
    for purpose in purposes.values():
        assert purpose.name in html
        assert purpose.wording in html
    assert html.count("Now: you agreed on") == 1
    assert html.count("Now: you said no on") == 1
    assert html.count("Now: you have not been asked yet.") == 2
    assert 'name="purpose_newsletter"' in html
    assert 'id="id_purpose_newsletter"' in html and 'for="id_purpose_newsletter"' in html


def test_the_boxes_start_ticked_for_what_the_customer_agreed_to(client, ada):
    html = client.get(page_url(ada)).content.decode()
    newsletter = html.split('name="purpose_newsletter"')[1].split(">")[0]
    promotions = html.split('name="purpose_promotions"')[1].split(">")[0]
    assert "checked" in newsletter
    assert "checked" not in promotions


def test_every_form_on_the_page_carries_a_csrf_token(client, ada):
    html = client.get(page_url(ada)).content.decode()
    assert html.count('method="post"') == html.count("csrfmiddlewaretoken") > 0


def test_saving_records_exactly_the_changed_purposes_with_the_proof(client, ada, purposes):
    # given Ada's consent history so far
    before = ConsentEvent.objects.count()
    policy = PolicyVersion.objects.current()

    # when she withdraws the newsletter, agrees to promotions and market research, and leaves
    # internal analysis unticked (never asked: leaving it unticked is not a decision)
    response = client.post(
        page_url(ada),
        {"purpose_promotions": "on", "purpose_market_research": "on"},
        REMOTE_ADDR="203.0.113.7",
        HTTP_USER_AGENT=BROWSER,
    )

    # then she is sent back to her page with a confirmation
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Your choices are saved" in page
    assert "you no longer agree to: Newsletter" in page

    # and exactly three events were recorded, each with its proof
    events = list(ConsentEvent.objects.order_by("id")[before:])
    assert sorted((e.purpose.code, e.granted) for e in events) == [
        ("market_research", True),
        ("newsletter", False),
        ("promotions", True),
    ]
    for event in events:
        assert event.source == Source.PREFERENCE_PAGE
        assert event.ip_address == "203.0.113.7"
        assert event.user_agent == BROWSER
        assert event.policy_version == policy
        assert event.wording == purposes[event.purpose.code].wording
    assert states(ada) == {"newsletter": False, "promotions": True, "market_research": True}


def test_saving_the_same_choices_again_records_nothing(client, ada):
    before = ConsentEvent.objects.count()
    response = client.post(page_url(ada), {"purpose_newsletter": "on"})
    assert response.status_code == 302
    assert ConsentEvent.objects.count() == before
    assert "Nothing changed" in client.get(response["Location"]).content.decode()


def test_unsubscribe_from_all_marketing_withdraws_every_marketing_purpose(client, purposes):
    grace = customer_with_choices("grace@example.com", granted=["newsletter", "market_research", "internal_analysis"])
    response = client.post(page_url(grace) + "unsubscribe-all/", HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 302
    # every marketing purpose is now "no" (promotions, never asked, too: she said no to all);
    # internal analysis is not marketing and is left as it was
    assert states(grace) == {
        "newsletter": False,
        "market_research": False,
        "promotions": False,
        "internal_analysis": True,
    }
    withdrawals = ConsentEvent.objects.filter(customer=grace, granted=False)
    assert {e.source for e in withdrawals} == {Source.PREFERENCE_PAGE}
    assert {e.user_agent for e in withdrawals} == {BROWSER}


def test_unsubscribe_from_all_needs_a_post(client, ada):
    assert client.get(page_url(ada) + "unsubscribe-all/").status_code == 405
    assert states(ada)["newsletter"] is True


def test_the_page_links_to_the_current_policy_text(client, ada):
    PolicyVersion.objects.create(version="2.0", effective_at="2025-06-01T00:00:00Z", text="Version two text.")
    html = client.get(page_url(ada)).content.decode()
    assert 'href="/preferences/policy/"' in html
    assert "version 2.0" in html
    policy = client.get("/preferences/policy/")
    assert policy.status_code == 200
    assert "Version two text." in policy.content.decode()
    assert "Version 2.0" in policy.content.decode()


def test_the_page_names_the_version_in_force_not_one_announced_for_later(client, ada):
    PolicyVersion.objects.create(version="2.0", effective_at="2025-06-01T00:00:00Z", text="Version two.")
    PolicyVersion.objects.create(version="3.0", effective_at="2999-01-01T00:00:00Z", text="Version three.")
    html = client.get(page_url(ada)).content.decode()
    assert "version 2.0" in html and "version 3.0" not in html


# --- a page left open: a save changes only the boxes the customer changed


def shown_form(client, customer) -> dict[str, str]:
    """The form as the page rendered it: every checkbox and hidden field with its value."""
    html = client.get(page_url(customer)).content.decode()
    data = dict(re.findall(r'type="hidden" name="((?:shown|wording)_\w+)" value="(\w+)"', html))
    data.update(dict.fromkeys(re.findall(r'name="(purpose_\w+)"[^>]*checked', html), "on"))
    return data


def test_a_page_left_open_while_unsubscribing_elsewhere_does_not_take_the_unsubscribe_back(client, ada, purposes):
    stale = shown_form(client, ada)  # the newsletter box shows ticked
    assert stale["purpose_newsletter"] == "on" and stale["shown_newsletter"] == "1"
    consent_withdraw(customer=ada, purpose=purposes["newsletter"], source=Source.UNSUBSCRIBE_LINK)
    # back in the old tab, the customer ticks market research and saves
    response = client.post(page_url(ada), {**stale, "purpose_market_research": "on"})
    assert response.status_code == 302
    assert states(ada) == {"newsletter": False, "promotions": False, "market_research": True}
    assert not ada.consent_events.filter(purpose__code="newsletter", granted=True, source=Source.PREFERENCE_PAGE)


def test_unticking_on_an_old_page_still_withdraws(client, ada, purposes):
    stale = shown_form(client, ada)
    del stale["purpose_newsletter"]
    assert client.post(page_url(ada), stale).status_code == 302
    assert states(ada)["newsletter"] is False


def test_a_form_that_does_not_say_how_the_boxes_were_shown_is_compared_with_the_current_state(client, ada):
    # a page rendered before the hidden fields existed, or a tampered one
    response = client.post(page_url(ada), {"purpose_promotions": "on", "shown_newsletter": "x"})
    assert response.status_code == 302
    assert states(ada) == {"newsletter": False, "promotions": True}


def test_a_change_made_on_a_page_showing_old_wording_is_refused_until_the_new_wording_is_seen(client, ada, purposes):
    stale = shown_form(client, ada)
    purposes["market_research"].wording = "We may invite you to paid surveys by our partner."
    purposes["market_research"].save()
    response = client.post(page_url(ada), {**stale, "purpose_market_research": "on"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "The wording of “Market research” changed while this page was open" in html
    assert "paid surveys by our partner" in html
    assert "market_research" not in states(ada)  # nothing recorded
    # the page shown again carries the new wording and the customer's tick: saving it records
    again = dict(re.findall(r'type="hidden" name="((?:shown|wording)_\w+)" value="(\w+)"', html))
    again.update(dict.fromkeys(re.findall(r'name="(purpose_\w+)"[^>]*checked', html), "on"))
    assert again["purpose_market_research"] == "on"
    assert client.post(page_url(ada), again).status_code == 302
    event = ada.consent_events.get(purpose__code="market_research")
    assert event.granted and "paid surveys by our partner" in event.wording


def test_a_wording_change_to_a_purpose_left_alone_does_not_stop_a_save(client, ada, purposes):
    stale = shown_form(client, ada)
    purposes["newsletter"].wording = "A new newsletter text."
    purposes["newsletter"].save()
    assert client.post(page_url(ada), {**stale, "purpose_market_research": "on"}).status_code == 302
    assert states(ada)["market_research"] is True and states(ada)["newsletter"] is True
