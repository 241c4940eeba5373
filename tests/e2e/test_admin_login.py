import pytest

from tests.factories import CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_sign_in_and_find_a_customer(live_server, page, django_user_model):
    django_user_model.objects.create_superuser("staffer", "staffer@example.com", "correct horse battery")
    CustomerFactory(email="ada@example.com", last_name="Lovelace")
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "staffer")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/customers/customer/?q=ada@example.com")
    assert page.locator("#result_list").inner_text().count("ada@example.com") == 1
