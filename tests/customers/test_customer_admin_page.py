"""The customer's admin page and list, as staff use them."""

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from customers.admin import CustomerAdmin
from customers.models import Customer, CustomerChange
from tests.factories import CustomerFactory, RegistrationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _change_form_data(page, **changes):
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data["phone"] = str(data.get("phone") or "")
    data.update(changes)
    return data


# --- customers knows nothing of the apps above it --------------------------------------


def test_no_module_of_customers_imports_an_app_above_it():
    above = {"consents", "marketing", "privacy", "intake", "api", "dashboard", "config"}
    offenders = []
    for path in Path(settings.BASE_DIR, "customers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] in above]
    assert offenders == []


def test_the_customer_admin_templates_name_no_url_of_another_app():
    # The apps above add their buttons through admin_parts; a URL name of theirs here would
    # tie this app to them (and break the page when one is not installed).
    offenders = []
    for path in Path(settings.BASE_DIR, "templates", "admin", "customers").rglob("*.html"):
        for name in re.findall(r"{%\s*url\s+['\"]([^'\"]+)['\"]", path.read_text()):
            namespace, _, view = name.rpartition(":")
            if namespace != "admin" or not view.startswith("customers_"):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


# --- corrections go through the services ----------------------------------------------


def test_a_staff_change_of_address_and_notes_is_recorded_with_old_and_new_values(staff_client, admin_user):
    fiona = CustomerFactory(email="fiona@example.com", first_name="Fiona", last_name="Naylor", notes="")
    url = f"/admin/customers/customer/{fiona.pk}/change/"
    data = _change_form_data(
        staff_client.get(url), email="fiona.naylor@example.com", notes="Prefers letters", city="Leeds"
    )
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    fiona.refresh_from_db()
    assert fiona.email == "fiona.naylor@example.com"
    recorded = {c.field: (c.old_value, c.new_value, c.changed_by, c.staff_user) for c in fiona.changes.all()}
    assert recorded["email"] == ("fiona@example.com", "fiona.naylor@example.com", "staff", admin_user)
    assert recorded["notes"] == ("", "Prefers letters", "staff", admin_user)
    assert recorded["city"][1] == "Leeds"


def test_saving_an_unchanged_customer_records_no_correction(staff_client):
    fiona = CustomerFactory(email="fiona@example.com", first_name="Fiona")
    url = f"/admin/customers/customer/{fiona.pk}/change/"
    response = staff_client.post(url, _change_form_data(staff_client.get(url)))
    assert response.status_code == 302
    assert not CustomerChange.objects.filter(customer=fiona).exists()


def test_a_staff_change_to_an_address_another_customer_has_is_refused_on_the_form(staff_client):
    CustomerFactory(email="taken@example.com")
    fiona = CustomerFactory(email="fiona@example.com")
    url = f"/admin/customers/customer/{fiona.pk}/change/"
    response = staff_client.post(url, _change_form_data(staff_client.get(url), email="TAKEN@example.com"))
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    fiona.refresh_from_db()
    assert fiona.email == "fiona@example.com"


# --- the list: search and filters --------------------------------------------------------


def test_the_customer_list_finds_a_first_name_and_a_full_name(staff_client):
    CustomerFactory(email="f.n@example.com", first_name="Fiona", last_name="Naylor")
    CustomerFactory(email="fiona.b@example.com", first_name="Fiona", last_name="Baker")
    CustomerFactory(email="nina@example.com", first_name="Nina", last_name="Fiorelli")
    by_first = staff_client.get("/admin/customers/customer/", {"q": "fiona"}).content.decode()
    assert "f.n@example.com" in by_first and "fiona.b@example.com" in by_first
    by_full = staff_client.get("/admin/customers/customer/", {"q": "Fiona Naylor"}).content.decode()
    assert "f.n@example.com" in by_full
    assert "fiona.b@example.com" not in by_full
    assert "nina@example.com" not in by_full
    by_start = staff_client.get("/admin/customers/customer/", {"q": "  fiona   nay "}).content.decode()
    assert "f.n@example.com" in by_start and "fiona.b@example.com" not in by_start


def test_the_country_filter_is_one_drop_down_that_keeps_the_search(staff_client):
    CustomerFactory(email="hans@example.de", country="DE", first_name="Hans")
    CustomerFactory(email="hanna@example.com", country="GB", first_name="Hanna")
    page = staff_client.get("/admin/customers/customer/", {"q": "han"}).content.decode()
    assert '<select id="filter-country__exact" name="country__exact"' in page
    assert '<option value="DE">Germany</option>' in page
    assert '<input type="hidden" name="q" value="han">' in page
    assert page.count('href="?country__exact=') == 0  # no list of 250 links
    germany = staff_client.get("/admin/customers/customer/", {"q": "han", "country__exact": "DE"}).content.decode()
    assert "hans@example.de" in germany and "hanna@example.com" not in germany
    assert '<option value="DE" selected>Germany</option>' in germany
    every = staff_client.get("/admin/customers/customer/", {"q": "han", "country__exact": ""}).content.decode()
    assert "hans@example.de" in every and "hanna@example.com" in every


@pytest.mark.postgres
def test_a_full_name_search_is_served_by_its_index_on_postgresql():
    matching = CustomerAdmin.search_matches(Customer.objects.all(), "Fiona Naylor")
    sql, params = matching.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "customer_full_name_prefix" in plan
    assert "customer_first_name_prefix" in plan


def test_a_search_that_finds_nobody_shows_an_empty_list(staff_client):
    CustomerFactory(email="fiona@example.com", first_name="Fiona")
    page = staff_client.get("/admin/customers/customer/", {"q": "Zed Quux"})
    assert page.status_code == 200
    assert "fiona@example.com" not in page.content.decode()
    assert "0 customers" in page.content.decode()


def test_a_common_name_still_lists_the_newest_customers_first(staff_client, monkeypatch):
    monkeypatch.setattr(CustomerAdmin, "SEARCH_ID_CAP", 2)  # more matches than the cap
    for n in range(4):
        CustomerFactory(
            email=f"fiona{n}@example.com", first_name="Fiona", created_at=timezone.now() - timedelta(days=n)
        )
    page = staff_client.get("/admin/customers/customer/", {"q": "fiona"}).content.decode()
    positions = [page.index(f"fiona{n}@example.com") for n in range(4)]
    assert positions == sorted(positions)


# --- the change page ---------------------------------------------------------------------


def test_the_money_back_deadline_is_shown_as_a_date_people_read(staff_client):
    purchased = timezone.now().replace(year=2026, month=12, day=2, hour=3, minute=39, second=17, microsecond=560239)
    registration = RegistrationFactory(purchased_at=purchased)
    customer_page = staff_client.get(f"/admin/customers/customer/{registration.customer_id}/change/").content.decode()
    registration_page = staff_client.get(
        f"/admin/customers/productregistration/{registration.pk}/change/"
    ).content.decode()
    for html in (customer_page, registration_page):
        assert "1 Jan 2027, 03:39 UTC" in html
        assert "560239" not in html


def test_the_registrations_on_the_customer_page_are_a_narrow_read_only_table(staff_client):
    registration = RegistrationFactory(licence_key="AAAA-BBBB-CCCC-1111")
    page = staff_client.get(f"/admin/customers/customer/{registration.customer_id}/change/")
    inline = next(
        f for f in page.context["inline_admin_formsets"] if f.opts.model._meta.model_name == "productregistration"
    )
    assert len(list(inline.fields())) <= 5
    assert "AAAA-BBBB" not in page.content.decode()
    assert f"/admin/customers/productregistration/{registration.pk}/change/" in page.content.decode()


# --- refunds --------------------------------------------------------------------------------


def _registration_form(registration, **changes):
    local = timezone.localtime(registration.purchased_at)
    data = {
        "customer": registration.customer_id,
        "product": registration.product_id,
        "reseller": registration.reseller_id,
        "order_reference": registration.order_reference,
        "licence_key": registration.licence_key,
        "purchased_at_0": local.strftime("%Y-%m-%d"),
        "purchased_at_1": local.strftime("%H:%M:%S"),
        "refunded_at_0": "",
        "refunded_at_1": "",
        "refund_override_reason": "",
    }
    data.update(changes)
    return data


def test_a_refund_in_the_money_back_window_records_no_override_even_with_a_reason(staff_client):
    registration = RegistrationFactory(purchased_at=timezone.now() - timedelta(days=3))
    now = timezone.localtime()
    url = f"/admin/customers/productregistration/{registration.pk}/change/"
    data = _registration_form(
        registration,
        refunded_at_0=now.strftime("%Y-%m-%d"),
        refunded_at_1=now.strftime("%H:%M:%S"),
        refund_override_reason="Asked nicely",
    )
    assert staff_client.post(url, data).status_code == 302
    registration.refresh_from_db()
    assert registration.refunded_at is not None
    assert (registration.refund_override_by, registration.refund_override_reason) == (None, "")


def test_a_recorded_refund_cannot_be_edited_in_admin(staff_client, admin_user):
    registration = RegistrationFactory(purchased_at=timezone.now() - timedelta(days=3))
    refunded_at = timezone.now() - timedelta(days=1)
    from customers.services import registration_refund

    registration_refund(registration=registration, refunded_at=refunded_at)
    url = f"/admin/customers/productregistration/{registration.pk}/change/"
    later = timezone.localtime()
    data = _registration_form(
        registration, refunded_at_0=later.strftime("%Y-%m-%d"), refunded_at_1=later.strftime("%H:%M:%S")
    )
    assert staff_client.post(url, data).status_code == 302
    registration.refresh_from_db()
    assert registration.refunded_at == refunded_at


def test_a_late_refund_names_the_deadline_in_words():
    from django.core.exceptions import ValidationError

    from customers.services import registration_refund

    purchased = timezone.now().replace(year=2026, month=9, day=1, hour=12, minute=0, second=0, microsecond=0)
    registration = RegistrationFactory(purchased_at=purchased)
    with pytest.raises(ValidationError) as refused:
        registration_refund(registration=registration, refunded_at=purchased + timedelta(days=45))
    assert "1 Oct 2026, 12:00 UTC" in str(refused.value)


# --- one lookup by address or public ID ------------------------------------------------------


def test_a_customer_is_found_by_address_in_any_casing_or_by_public_id_and_nothing_else():
    fiona = CustomerFactory(email="fiona@example.com")
    assert list(Customer.objects.by_email_or_public_id(" FIONA@example.com ")) == [fiona]
    assert list(Customer.objects.by_email_or_public_id(str(fiona.public_id))) == [fiona]
    assert not Customer.objects.by_email_or_public_id("not-a-uuid").exists()
    assert not Customer.objects.by_email_or_public_id("").exists()
