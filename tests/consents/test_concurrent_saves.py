import threading

import pytest
from django.db import connection

from consents.models import ConsentEvent
from consents.preferences import preferences_save
from consents.services import RequestMeta
from tests.consents.people import customer_with_choices

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_tabs_saving_the_same_change_at_once_record_it_once():
    # given Ada takes the newsletter, with the page open in two tabs
    ada = customer_with_choices("ada@example.com", granted=["newsletter"])
    before = ConsentEvent.objects.filter(customer=ada).count()
    start = threading.Barrier(2)
    errors = []

    def save():
        try:
            start.wait()
            preferences_save(customer=ada, wanted={"newsletter": False, "promotions": True}, request_meta=RequestMeta())
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    # when both tabs save the same change at the same moment
    threads = [threading.Thread(target=save) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then the customer row lock makes the second see the first's result: one event per change
    assert errors == []
    events = ConsentEvent.objects.filter(customer=ada).order_by("id")[before:]
    assert sorted((e.purpose.code, e.granted) for e in events) == [("newsletter", False), ("promotions", True)]
