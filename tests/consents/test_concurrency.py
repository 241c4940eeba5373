import itertools
import threading

import pytest
from django.db import connection

from consents.models import Consent, ConsentEvent, Purpose, Source
from consents.services import consent_set
from tests.factories import CustomerFactory

ROUNDS = 25


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_changes_keep_the_state_equal_to_the_latest_event():
    # given a customer changing their mind from two browser tabs at once
    margaret = CustomerFactory(email="margaret@example.com")
    newsletter = Purpose.objects.get(code="newsletter")
    start = threading.Barrier(2)
    errors = []

    def click(granted: bool):
        try:
            start.wait()
            for _ in range(ROUNDS):
                consent_set(customer=margaret, purpose=newsletter, granted=granted, source=Source.PREFERENCE_PAGE)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    # when both tabs keep saving opposite answers
    threads = [threading.Thread(target=click, args=(value,)) for value in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then the current state is exactly what the latest event says
    assert errors == []
    events = list(ConsentEvent.objects.filter(customer=margaret, purpose=newsletter).order_by("id"))
    state = Consent.objects.get(customer=margaret, purpose=newsletter)
    assert events
    assert state.event_id == events[-1].id
    assert state.granted == events[-1].granted
    # and every event is a real change: no two neighbours record the same decision
    assert all(a.granted != b.granted for a, b in itertools.pairwise(events))
    assert Consent.objects.filter(customer=margaret).count() == 1
