"""
The dashboard's scripts in a real browser, under the site's CSP: the audience segment form
counts its audience as the criteria change, the import page follows a running import to its
end, and the dashboard itself raises no CSP violation.
"""

import pytest
from django.test import Client

from config.celery import app as celery_app
from dashboard import imports, services
from dashboard.models import ImportJob
from tests.marketing.helpers import customer_who_consents, ensure_purposes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def staff_page(browser, live_server, django_user_model):
    ensure_purposes()
    root = django_user_model.objects.create_superuser("root", "root@example.com", "correct horse battery")
    client = Client()
    client.force_login(root)
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.csp_errors = []
    page.on("console", lambda m: page.csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.root = root
    yield page
    context.close()


def test_the_segment_form_counts_its_audience_as_the_criteria_change(staff_page, live_server):
    customer_who_consents(email="heidi@example.com", country="DE", language="de")
    customer_who_consents(email="ada@example.com", country="GB", language="en")
    page = staff_page

    page.goto(f"{live_server.url}/admin/marketing/audiencesegment/add/")
    # (wait_for_function would evaluate a string, which the page's CSP forbids: locators instead)
    page.locator("#segment-audience li", has_text="Newsletter: 2 customers").wait_for()
    page.check("input[name=languages][value=de]")

    page.locator("#segment-audience li", has_text="Newsletter: 1 customer").wait_for()
    assert page.csp_errors == []


def test_the_import_page_follows_the_import_to_its_end(staff_page, live_server):
    page = staff_page
    job = imports.import_check(
        data=b"email,first_name\nada@example.com,Ada\ngrace@example.com,Grace\n",
        file_name="two.csv",
        staff_user=page.root,
    )
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)

    page.goto(f"{live_server.url}/admin/customer-import/{job.public_id}/")
    assert page.text_content("#import-status") == "Confirmed, waiting for a worker"
    job.refresh_from_db()
    imports.import_run(job=job)  # the worker's part, while the page watches

    page.wait_for_selector("text=Imported two.csv: 2 created, 0 updated, 0 unchanged.")
    assert page.get_attribute("#import-bar", "value") == "100"
    assert page.csp_errors == []


def test_the_dashboard_raises_no_csp_violation(staff_page, live_server):
    customer_who_consents(email="ada@example.com")
    services.figures_refresh()
    previous = celery_app.conf.task_always_eager
    page = staff_page
    try:
        page.goto(f"{live_server.url}/admin/")
        assert page.locator("svg[role=img]").count() >= 5
        page.click("text=Figures of this chart >> nth=0")
        assert page.locator("details[open] table").count() == 1
    finally:
        celery_app.conf.task_always_eager = previous
    assert page.csp_errors == []
