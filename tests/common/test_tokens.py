"""The one signed-token helper behind every link we mail: each way a token fails has its own type."""

import time
import uuid
from datetime import timedelta

import pytest
from django.core import signing

from common.tokens import (
    BadToken,
    TokenExpired,
    TokenInvalid,
    TokenSuperseded,
    sign,
    unsign,
)

ADA = uuid.UUID("a0a0a0a0-0000-4000-8000-000000000001")
SALT = "tests.some-link"


def test_a_token_gives_back_the_customer_the_generation_and_its_fields():
    link = unsign(sign(salt=SALT, public_id=ADA, generation=3, a="export"), salt=SALT, max_age=timedelta(hours=1))
    assert (link.public_id, link.generation, link.fields) == (ADA, 3, {"a": "export"})


def test_a_token_without_a_generation_belongs_to_generation_zero():
    link = unsign(sign(salt=SALT, public_id=ADA), salt=SALT, max_age=None)
    assert link.generation is None
    link.check_generation(0)
    with pytest.raises(TokenSuperseded):
        link.check_generation(1)


def test_a_token_of_an_earlier_generation_is_superseded():
    link = unsign(sign(salt=SALT, public_id=ADA, generation=1), salt=SALT, max_age=None)
    with pytest.raises(TokenSuperseded, match="replaced by a newer one"):
        link.check_generation(2)


def test_a_token_signed_for_another_kind_of_link_is_invalid():
    with pytest.raises(TokenInvalid):
        unsign(sign(salt="tests.other-link", public_id=ADA), salt=SALT, max_age=None)


@pytest.mark.parametrize("token", ["", "nonsense", "a:b:c"])
def test_a_damaged_token_is_invalid(token):
    with pytest.raises(TokenInvalid, match="not valid"):
        unsign(token, salt=SALT, max_age=None)


def test_a_tampered_token_is_invalid():
    token = sign(salt=SALT, public_id=ADA)
    with pytest.raises(TokenInvalid):
        unsign(token[:-2] + ("xy" if not token.endswith("xy") else "yz"), salt=SALT, max_age=None)


@pytest.mark.parametrize("payload", [["not", "a", "dict"], {"c": "42"}, {"c": str(ADA), "g": "1"}])
def test_a_signed_token_of_the_wrong_shape_is_invalid(payload):
    with pytest.raises(TokenInvalid):
        unsign(signing.dumps(payload, salt=SALT, compress=True), salt=SALT, max_age=None)


def test_an_old_token_expires_unless_it_has_no_max_age(monkeypatch):
    two_hours_ago = time.time() - 2 * 3600
    monkeypatch.setattr(signing.time, "time", lambda: two_hours_ago)
    token = sign(salt=SALT, public_id=ADA)
    monkeypatch.undo()
    with pytest.raises(TokenExpired, match="expired"):
        unsign(token, salt=SALT, max_age=timedelta(hours=1))
    assert unsign(token, salt=SALT, max_age=None).public_id == ADA


def test_every_failure_is_a_bad_token_with_a_message_fit_to_show():
    for error_type in (TokenInvalid, TokenExpired, TokenSuperseded):
        error = error_type()
        assert isinstance(error, BadToken)
        assert str(error).startswith("This link")


def test_tokens_signed_before_the_helper_existed_still_read():
    # An unsubscribe link in an email already sent: the same payload and salt as always.
    old = signing.dumps({"c": str(ADA), "p": "newsletter", "m": ""}, salt=SALT, compress=True)
    link = unsign(old, salt=SALT, max_age=None)
    assert (link.public_id, link.fields) == (ADA, {"p": "newsletter", "m": ""})
