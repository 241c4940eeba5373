"""
A change of address: asked for through a single-use link to the address on file, confirmed
by the new address, announced to the old one with a link that undoes it; every link sent
before stops working, except unsubscribe links.
"""

import hashlib
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from consents.tokens import SensitiveAction, make_preference_token, make_sensitive_token
from customers.models import CustomerChange, PendingEmailChange
from marketing.tokens import make_unsubscribe_token
from privacy.services import customer_erase
from tests.consents.people import customer_with_choices
from tests.factories import CustomerFactory
from tests.privacy.people import staff_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(purposes):
    return customer_with_choices("ada@example.com", granted=["newsletter"], first_name="Ada")


@pytest.fixture
def mail_now(eager_celery, django_capture_on_commit_callbacks):
    """Run the request's after-commit tasks (the mail) at once."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _link(message, route: str) -> str:
    found = re.search(rf"http://\S+(/preferences/{route}/\S+/)", str(message.body))
    assert found, message.body
    return found.group(1)


def ask_to_move(client, customer, new_email: str, mail_now) -> str:
    """Ada asks through a fresh link for `new_email`; returns the confirmation link mailed to it."""
    link = f"/preferences/secure/{make_sensitive_token(customer, SensitiveAction.EMAIL)}/"
    with mail_now():
        response = client.post(link, {"new_email": new_email})
    assert response.status_code == 200, response.content.decode()
    assert mail.outbox[-1].to == [new_email.lower()]
    return _link(mail.outbox[-1], "email")


def confirm(client, link: str, mail_now) -> str:
    """The new address confirms; returns the undo link mailed to the old one."""
    with mail_now():
        response = client.post(link)
    assert response.status_code == 200, response.content.decode()
    assert "Your email address is changed" in response.content.decode()
    return _link(mail.outbox[-1], "email-undo")


def test_the_new_address_confirms_and_the_old_one_is_told_with_an_undo_link(client, ada, mail_now):
    # when Ada asks to move, the new address gets the confirmation link and nothing changes yet
    old_link = make_preference_token(ada)
    confirmation = ask_to_move(client, ada, "Ada@Lovelace.example", mail_now)
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"

    # a mail scanner following the link changes nothing
    page = client.get(confirmation)
    assert page.status_code == 200 and "Yes, use ada@lovelace.example" in page.content.decode()
    assert "no-store" in page["Cache-Control"] and page["Referrer-Policy"] == "same-origin"
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"

    # the button does, and the old address hears of it
    undo = confirm(client, confirmation, mail_now)
    ada.refresh_from_db()
    assert ada.email == "ada@lovelace.example"
    notice = mail.outbox[-1]
    assert notice.to == ["ada@example.com"]
    assert "from ada@example.com to ada@lovelace.example" in notice.body
    assert "within 14 days" in notice.body and undo in notice.body
    change = CustomerChange.objects.get(customer=ada, field="email")
    assert (change.old_value, change.new_value, change.changed_by) == (
        "ada@example.com",
        "ada@lovelace.example",
        "customer",
    )
    # and the preference link she had stopped working
    response = client.get(f"/preferences/{old_link}/")
    assert response.status_code == 400 and "This link was replaced" in response.content.decode()


def test_the_address_being_confirmed_is_kept_server_side_not_in_the_link(client, ada, mail_now):
    confirmation = ask_to_move(client, ada, "ada@lovelace.example", mail_now)
    token = confirmation.rstrip("/").rpartition("/")[2]
    assert "lovelace" not in confirmation and ":" not in token
    pending = PendingEmailChange.objects.get(customer=ada)
    assert pending.new_email == "ada@lovelace.example"
    assert pending.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(PendingEmailChange.objects.values().get())


def test_the_link_to_ask_for_a_change_works_once(client, ada, mail_now):
    link = f"/preferences/secure/{make_sensitive_token(ada, SensitiveAction.EMAIL)}/"
    with mail_now():
        client.post(link, {"new_email": "ada@lovelace.example"})
    again = client.post(link, {"new_email": "mallory@example.net"})
    assert again.status_code == 400 and "This link has already been used" in again.content.decode()
    assert client.get(link).status_code == 400
    assert list(PendingEmailChange.objects.values_list("new_email", flat=True)) == ["ada@lovelace.example"]


def test_a_confirmation_link_works_once(client, ada, mail_now):
    confirmation = ask_to_move(client, ada, "ada@lovelace.example", mail_now)
    confirm(client, confirmation, mail_now)
    again = client.post(confirmation)
    assert again.status_code == 400 and "already been used" in again.content.decode()


def test_a_confirmation_link_expires_with_the_sensitive_link_age(client, ada, mail_now):
    confirmation = ask_to_move(client, ada, "ada@lovelace.example", mail_now)
    PendingEmailChange.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(confirmation)
    assert response.status_code == 400 and "This link has expired" in response.content.decode()
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"


def test_an_address_another_customer_has_is_refused_at_confirmation(client, ada, mail_now):
    confirmation = ask_to_move(client, ada, "grace@example.com", mail_now)
    CustomerFactory(email="grace@example.com")
    response = client.post(confirmation)
    assert response.status_code == 409
    assert "already belongs to another customer record" in response.content.decode()
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    assert not CustomerChange.objects.filter(customer=ada).exists()


def test_asking_to_change_to_the_current_address_is_refused(client, ada):
    link = f"/preferences/secure/{make_sensitive_token(ada, SensitiveAction.EMAIL)}/"
    response = client.post(link, {"new_email": "ADA@example.com"})
    assert response.status_code == 400
    assert "already your address" in response.content.decode()
    assert not PendingEmailChange.objects.exists()


def test_the_undo_link_puts_the_old_address_back_and_ends_the_links_sent_in_between(client, ada, mail_now):
    undo = confirm(client, ask_to_move(client, ada, "ada@lovelace.example", mail_now), mail_now)
    ada.refresh_from_db()
    link_sent_in_between = make_preference_token(ada)
    assert client.get(f"/preferences/{link_sent_in_between}/").status_code == 200

    page = client.get(undo)
    assert page.status_code == 200 and "Yes, use ada@example.com again" in page.content.decode()
    response = client.post(undo)
    assert response.status_code == 200 and "Your email address is back" in response.content.decode()

    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    assert PendingEmailChange.objects.get(customer=ada).undone_at is not None
    assert [(c.old_value, c.new_value) for c in CustomerChange.objects.filter(customer=ada).order_by("id")] == [
        ("ada@example.com", "ada@lovelace.example"),
        ("ada@lovelace.example", "ada@example.com"),
    ]
    assert client.get(f"/preferences/{link_sent_in_between}/").status_code == 400
    # a fresh link works, and the undo link is used up
    fresh = re.search(r'href="(/preferences/[^"]+/)"', response.content.decode()).group(1)
    assert client.get(fresh).status_code == 200
    assert client.post(undo).status_code == 400


def test_whoever_took_the_address_cannot_take_it_twice(client, ada, mail_now):
    # Mallory moves Ada's record to one address, then to another; Ada undoes the first change
    first_undo = confirm(client, ask_to_move(client, ada, "mallory@example.net", mail_now), mail_now)
    ada.refresh_from_db()
    second_undo = confirm(client, ask_to_move(client, ada, "mallory2@example.net", mail_now), mail_now)
    assert client.post(first_undo).status_code == 200
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    # the undo link mailed to Mallory's first address no longer works
    response = client.post(second_undo)
    assert response.status_code == 400
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"


def test_a_pending_confirmation_dies_when_the_address_changes_meanwhile(client, ada, mail_now):
    stale = ask_to_move(client, ada, "ada@old-job.example", mail_now)
    confirm(client, ask_to_move(client, ada, "ada@lovelace.example", mail_now), mail_now)
    response = client.post(stale)
    assert response.status_code == 400 and "This link was replaced" in response.content.decode()
    ada.refresh_from_db()
    assert ada.email == "ada@lovelace.example"


def test_the_undo_link_expires_after_the_undo_period(client, ada, mail_now, settings):
    undo = confirm(client, ask_to_move(client, ada, "ada@lovelace.example", mail_now), mail_now)
    change = PendingEmailChange.objects.get(customer=ada)
    assert change.undo_expires_at - change.used_at == timedelta(days=14)
    PendingEmailChange.objects.update(undo_expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(undo)
    assert response.status_code == 400 and "This link has expired" in response.content.decode()
    ada.refresh_from_db()
    assert ada.email == "ada@lovelace.example"


def test_an_old_unsubscribe_link_still_unsubscribes_after_a_change_of_address(client, ada, mail_now):
    # Unsubscribe links never expire and never need a login: they carry no link generation.
    unsubscribe = make_unsubscribe_token(customer_public_id=ada.public_id, purpose_code="newsletter")
    confirm(client, ask_to_move(client, ada, "ada@lovelace.example", mail_now), mail_now)
    response = client.post(f"/unsubscribe/{unsubscribe}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert not ada.consents.get(purpose__code="newsletter").granted


def test_a_staff_change_of_address_ends_the_preference_links_sent_before(client, ada, admin_user):
    old_link = make_preference_token(ada)
    client.force_login(admin_user)
    url = f"/admin/customers/customer/{ada.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"email": "ada@lovelace.example", "phone": str(data.get("phone") or "")})
    assert client.post(url, data).status_code == 302
    client.logout()
    ada.refresh_from_db()
    assert ada.email == "ada@lovelace.example"
    assert client.get(f"/preferences/{old_link}/").status_code == 400


def test_the_export_lists_the_changes_asked_for(client, ada, mail_now):
    confirm(client, ask_to_move(client, ada, "ada@lovelace.example", mail_now), mail_now)
    ada.refresh_from_db()
    data = client.post(f"/preferences/secure/{make_sensitive_token(ada, SensitiveAction.EXPORT)}/").json()
    [change] = data["email_changes"]
    assert (change["old_email"], change["new_email"]) == ("ada@example.com", "ada@lovelace.example")
    assert change["confirmed_at"] and change["undone_at"] is None


def test_erasure_deletes_the_changes_asked_for(client, ada, mail_now, django_user_model):
    ask_to_move(client, ada, "ada@old-job.example", mail_now)
    confirm(client, ask_to_move(client, ada, "ada@lovelace.example", mail_now), mail_now)
    officer = staff_in(django_user_model, "Privacy officer", "olga-officer")
    erasure = customer_erase(customer=ada, staff_user=officer)
    assert not PendingEmailChange.objects.exists()
    assert erasure.summary["customers"]["email_changes_deleted"] == 2


def test_the_confirmation_and_undo_links_work_without_their_final_slash(client, ada, mail_now):
    confirmation = ask_to_move(client, ada, "ada@lovelace.example", mail_now)
    assert client.get(confirmation.rstrip("/")).status_code == 200
    undo = confirm(client, confirmation.rstrip("/"), mail_now)
    response = client.post(undo.rstrip("/"))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "same-origin"
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"


@pytest.mark.parametrize("route", ["email", "email-undo"])
def test_a_made_up_confirmation_or_undo_token_gets_the_friendly_page(client, ada, route):
    response = client.post(f"/preferences/{route}/{'x' * 43}/")
    assert response.status_code == 400
    assert "This link does not work" in response.content.decode()
