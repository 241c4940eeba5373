import itertools
import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from consents.models import Consent, ConsentEvent, Source
from consents.services import consent_record, consent_set
from tests.factories import CustomerFactory

ROUNDS = 25


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_changes_keep_the_state_equal_to_the_latest_event(purposes):
    # given a customer changing their mind from two browser tabs at once
    margaret = CustomerFactory(email="margaret@example.com")
    newsletter = purposes["newsletter"]
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


def _record_in_turn(first, second, *, hold_seconds=0.3):
    """
    Run `first` in a transaction that holds its locks for a moment, and start `second` while it
    does: `second` must wait for `first` to commit, then see what it wrote.
    """
    first_has_written = threading.Event()
    errors = []

    def run_first():
        try:
            with transaction.atomic():
                first()
                first_has_written.set()
                time.sleep(hold_seconds)
        except Exception as error:
            errors.append(error)
            first_has_written.set()
        finally:
            connection.close()

    def run_second():
        try:
            first_has_written.wait()
            second()
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("later_made_goes_first", [False, True], ids=["in order", "the later-made one first"])
def test_of_two_concurrent_decisions_the_later_made_one_wins_in_either_order(purposes, later_made_goes_first):
    # given Nora, whose grant of 1 October (a letter) and withdrawal of 1 November (a phone
    # call) are recorded by two staff members at the same moment
    now = timezone.now()
    nora = CustomerFactory(email="nora@example.com", created_at=now - timedelta(days=90))
    newsletter = purposes["newsletter"]
    staff = get_user_model().objects.create_user("sam", is_staff=True)
    letter_day, phone_day = now - timedelta(days=60), now - timedelta(days=30)

    def record(granted, occurred_at):
        return lambda: consent_record(
            customer=nora,
            purpose=newsletter,
            granted=granted,
            source=Source.STAFF,
            staff_user=staff,
            note="recorded from the post and the phone log",
            occurred_at=occurred_at,
        )

    grant, withdrawal = record(True, letter_day), record(False, phone_day)
    first, second = (withdrawal, grant) if later_made_goes_first else (grant, withdrawal)

    # when both are recorded at once, the second waiting on the first's lock
    errors = _record_in_turn(first, second)

    # then both are in the ledger and the current state is the withdrawal, made last
    assert errors == []
    assert ConsentEvent.objects.filter(customer=nora, purpose=newsletter).count() == 2
    state = Consent.objects.select_related("event").get(customer=nora, purpose=newsletter)
    assert (state.granted, state.since, state.event.occurred_at) == (False, phone_day, phone_day)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_decisions_recorded_at_once_with_their_own_times_leave_the_latest_made_in_force(purposes):
    # given Margit, whose decisions from an import and from the post arrive together
    now = timezone.now()
    margit = CustomerFactory(email="margit@example.com", created_at=now - timedelta(days=400))
    newsletter = purposes["newsletter"]
    start = threading.Barrier(2)
    errors = []
    days = {True: [now - timedelta(days=2 * n + 1) for n in range(ROUNDS)]}
    days[False] = [now - timedelta(days=2 * n + 2) for n in range(ROUNDS)]

    def record(granted: bool):
        try:
            start.wait()
            for occurred_at in days[granted]:
                consent_record(
                    customer=margit, purpose=newsletter, granted=granted, source=Source.IMPORT, occurred_at=occurred_at
                )
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=record, args=(value,)) for value in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then the state is the decision made last of all (a grant, one day ago), whatever the order
    assert errors == []
    latest = ConsentEvent.objects.filter(customer=margit, purpose=newsletter).order_by("-occurred_at").first()
    state = Consent.objects.get(customer=margit, purpose=newsletter)
    assert latest.occurred_at == now - timedelta(days=1)
    assert (state.event_id, state.granted, state.since) == (latest.pk, True, latest.occurred_at)
