import pytest

pytestmark = pytest.mark.django_db


def test_an_unknown_address_gets_the_sites_friendly_page(client, settings):
    settings.DEBUG = False
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content
    assert b"Traceback" not in response.content


def test_a_server_error_shows_a_plain_page_without_details(client, settings):
    from django.template.loader import render_to_string

    page = render_to_string("500.html")
    assert "Something went wrong on our side" in page
    assert "Traceback" not in page
