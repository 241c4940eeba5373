"""A change of address confirmed or undone from two places at once (PostgreSQL row locks)."""

import threading

import pytest
from django.db import connection

from common.tokens import BadToken
from customers.email_changes import (
    email_change_confirm,
    email_change_confirmation_issue,
    email_change_request,
    email_change_undo,
    email_change_undo_issue,
)
from customers.models import CustomerChange
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def at_once(*calls):
    """Run each call in its own thread and connection, started together; return results or errors."""
    start = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(index, call):
        try:
            start.wait()
            outcomes[index] = call()
        except Exception as error:
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def asked(customer, new_email: str, nonce: str) -> str:
    customer.refresh_from_db()
    change = email_change_request(customer=customer, new_email=new_email, link_nonce=nonce)
    return email_change_confirmation_issue(change=change)


def test_a_confirmation_clicked_twice_at_once_changes_the_address_once():
    ada = CustomerFactory(email="ada@example.com")
    token = asked(ada, "ada@lovelace.example", "n1")
    outcomes = at_once(lambda: email_change_confirm(token=token), lambda: email_change_confirm(token=token))
    assert sorted(type(o).__name__ for o in outcomes) == ["PendingEmailChange", "TokenUsed"]
    ada.refresh_from_db()
    assert ada.email == "ada@lovelace.example" and ada.link_generation == 1
    assert CustomerChange.objects.filter(customer=ada, field="email").count() == 1


def test_an_undo_racing_another_confirmation_leaves_the_old_address_and_no_deadlock():
    # Mallory took Ada's address and asked for a second change; Ada undoes the first meanwhile
    ada = CustomerFactory(email="ada@example.com")
    first = email_change_confirm(token=asked(ada, "mallory@example.net", "n1"))
    undo = email_change_undo_issue(change=first)
    second = asked(ada, "mallory2@example.net", "n2")
    outcomes = at_once(lambda: email_change_undo(token=undo), lambda: email_change_confirm(token=second))
    assert not any(isinstance(o, Exception) and not isinstance(o, BadToken) for o in outcomes), outcomes
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
