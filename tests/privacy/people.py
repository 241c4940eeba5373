"""Staff in each role, a customer with a full history, and a search of every table for her details."""

from __future__ import annotations

import importlib
from datetime import timedelta

from auditlog.context import set_actor
from django.apps import apps
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from consents.models import DisclosurePurpose, Purpose, Source
from consents.services import RequestMeta, consent_set, disclosure_record
from customers.models import CustomerChange
from customers.services import customer_email_change, customer_update
from marketing import campaigns, dispatch, sending
from marketing.models import Campaign
from privacy.services import privacy_request_open
from tests.factories import CustomerFactory, RegistrationFactory, ResellerFactory

# Augusta's details are unusual on purpose: a hit anywhere in the database is hers.
AUGUSTA = {
    "email": "augusta.q7@analytical-engines.example",
    "first_name": "Augustaqx",
    "last_name": "Byronqx",
    "job_title": "Chief Enchantressqx of Numbers",
    "company": "Analytical Enginesqx Ltd",
    "phone": "+442079460958",
    "address_line1": "12 Marylebone Qx Street",
    "address_line2": "Flat Qx7",
    "city": "Ockhamqx",
    "region": "Surreyqx",
    "postal_code": "W1U 7QX",
    "signup_ip": "198.51.100.77",
    "signup_user_agent": "Mozilla/5.0 AugustaBrowser/7.7",
}
OLD_EMAIL = "augusta.old@analytical-engines.example"
CONSENT_IP = "203.0.113.201"
CONSENT_USER_AGENT = "Mozilla/5.0 EnchantressPhone/3.1"
LICENCE_KEY = "QXQX-7777-AUGU-STA1"
IMPORTED_CITY = "Ockhamqx Vale"


def ensure_roles() -> None:
    """The data migration creates the groups, but transactional tests flush tables: put them back."""
    if Group.objects.filter(name__in=["Support", "Marketing", "Privacy officer"]).count() < 3:
        importlib.import_module("marketing.migrations.0002_staff_roles").create_roles(apps, None)


def staff_in(django_user_model, role: str, username: str | None = None):
    ensure_roles()
    user = django_user_model.objects.create_user(
        username or role.lower().replace(" ", "-"), f"{(username or 'staff')}@staff.example", is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    return django_user_model.objects.get(pk=user.pk)  # fresh permission cache


def augusta_with_a_full_history(*, support_user, privacy_officer):
    """
    Augusta signed up (IP, user agent), changed her address, consented to the newsletter
    and withdrew, had consent to market research recorded by phone, bought a licence,
    had her data disclosed to a reseller, was corrected by staff, and asked to be erased.
    """
    details = {k: v for k, v in AUGUSTA.items() if k != "email"}
    augusta = CustomerFactory(email=OLD_EMAIL, **details)
    customer_email_change(customer=augusta, new_email=AUGUSTA["email"], changed_by=CustomerChange.ChangedBy.CUSTOMER)
    augusta.refresh_from_db()
    newsletter = Purpose.objects.get(code="newsletter")
    research = Purpose.objects.get(code="market_research")
    meta = RequestMeta(ip_address=CONSENT_IP, user_agent=CONSENT_USER_AGENT)
    consent_set(customer=augusta, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE, request_meta=meta)
    consent_set(customer=augusta, purpose=newsletter, granted=False, source=Source.PREFERENCE_PAGE, request_meta=meta)
    given = consent_set(
        customer=augusta,
        purpose=research,
        granted=True,
        source=Source.STAFF,
        staff_user=support_user,
        method="phone",
        note=f"Augustaqx Byronqx said yes on the phone from {AUGUSTA['phone']}",
    )
    reseller = ResellerFactory(name="Paddle")
    RegistrationFactory(customer=augusta, reseller=reseller, licence_key=LICENCE_KEY, order_reference="PAD-QX-1")
    disclosure_record(
        customer=augusta,
        third_party=reseller,
        data_categories=["identity", "contact"],
        legal_basis="consent",
        disclosure_purpose=DisclosurePurpose.objects.get(code="market_research"),
        purpose="Research interview",
        consent_event=given,
        disclosed_at=timezone.now() + timedelta(minutes=1),
    )
    with set_actor(support_user):
        customer_update(
            customer=augusta,
            data={"job_title": AUGUSTA["job_title"] + " II", "city": AUGUSTA["city"]},
            changed_by=CustomerChange.ChangedBy.STAFF,
            staff_user=support_user,
        )
    request = privacy_request_open(
        customer=augusta,
        kind="erasure",
        channel="letter",
        details=f"Letter from Augustaqx Byronqx, {AUGUSTA['address_line1']}: please erase me",
    )
    augusta.refresh_from_db()
    return augusta, request


def text_columns_containing(values: list[str]) -> dict[str, list[str]]:
    """
    Every table and column (cast to text) whose value contains any of `values`, ignoring case.
    Reads the database's own catalogue, so tables of third-party apps are searched too.
    """
    hits: dict[str, list[str]] = {}
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                expression = f"LOWER(CAST({quote(column.name)} AS TEXT))"
                condition = " OR ".join(f"{expression} LIKE %s" for _ in values)
                cursor.execute(
                    f"SELECT {expression} FROM {quote(table)} WHERE {condition}",
                    [f"%{value.lower()}%" for value in values],
                )
                for (found,) in cursor.fetchall():
                    matched = [value for value in values if value.lower() in found]
                    hits.setdefault(f"{table}.{column.name}", []).extend(matched)
    return hits


def gus_who_consents():
    """A bystander, so that a campaign has someone to go to."""
    gus = CustomerFactory(email="gus@example.com")
    consent_set(
        customer=gus, purpose=Purpose.objects.get(code="newsletter"), granted=True, source=Source.PREFERENCE_PAGE
    )
    return gus


def send_campaign(name: str, staff_user) -> Campaign:
    campaign = Campaign(
        name=name,
        purpose=Purpose.objects.get(code="newsletter"),
        subject="News for {{ first_name }}",
        text_body="Hello {{ first_name }} {{ last_name }}",
        html_body="<p>Hello {{ first_name }}</p>",
        created_by=staff_user,
    )
    campaign.full_clean()
    campaign.save()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
    return campaign
