"""
Per-recipient unsubscribe tokens. The token names the customer (public UUID), the
purpose and the campaign; it never expires (withdrawal must always be possible) and
needs no login. The message builder (marketing/emails.py) puts them into the links.
"""

import uuid
from dataclasses import dataclass

from django.core import signing

from consents.models import Purpose
from consents.tokens import BadToken
from customers.models import Customer

UNSUBSCRIBE_SALT = "marketing.unsubscribe"


@dataclass(frozen=True)
class UnsubscribeTarget:
    customer: Customer
    purpose: Purpose
    campaign_public_id: str  # may be "" for links not tied to a campaign


def make_unsubscribe_token(*, customer_public_id, purpose_code: str, campaign_public_id="") -> str:
    payload = {"c": str(customer_public_id), "p": purpose_code, "m": str(campaign_public_id or "")}
    return signing.dumps(payload, salt=UNSUBSCRIBE_SALT, compress=True)


def read_unsubscribe_token(token: str) -> UnsubscribeTarget:
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)  # no max_age: never expires
    except signing.BadSignature as error:
        raise BadToken("This unsubscribe link is not valid.") from error
    if not isinstance(data, dict):
        raise BadToken("This unsubscribe link is not valid.")
    try:
        key = uuid.UUID(str(data.get("c")))
    except ValueError as error:
        raise BadToken("This unsubscribe link is not valid.") from error
    # An erased customer's link still "works" in the sense that nothing can be sent to them;
    # the view treats a missing customer as already unsubscribed.
    customer = Customer.objects.filter(public_id=key).first()
    purpose = Purpose.objects.filter(code=str(data.get("p")), is_marketing=True).first()
    if customer is None or purpose is None:
        raise BadToken("This unsubscribe link does not lead to a subscription.")
    return UnsubscribeTarget(customer=customer, purpose=purpose, campaign_public_id=str(data.get("m") or ""))
