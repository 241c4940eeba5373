"""
Per-recipient unsubscribe tokens, built on common.tokens. The token names the customer
(public UUID), the purpose and the campaign; it never expires and needs no login, because
withdrawal must always be possible. The message builder (marketing/emails.py) puts them into
the links.

Unlike preference links, an unsubscribe token carries no link generation and none is checked:
a change of address raises the customer's generation and kills their old preference links,
but an old email's unsubscribe link must still unsubscribe ("Unsubscribe links never expire
and never need a login"). It can only ever withdraw one purpose, so it gives nothing away.
"""

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from common.tokens import TokenInvalid, TokenUnknown, sign, unsign
from consents.models import Purpose
from customers.models import Customer

UNSUBSCRIBE_SALT = "marketing.unsubscribe"


@dataclass(frozen=True)
class UnsubscribeTarget:
    customer: Customer
    purpose: Purpose
    campaign_public_id: str  # may be "" for links not tied to a campaign


def make_unsubscribe_token(*, customer_public_id, purpose_code: str, campaign_public_id="") -> str:
    return sign(
        salt=UNSUBSCRIBE_SALT,
        public_id=customer_public_id,
        p=purpose_code,
        m=str(campaign_public_id or ""),
    )


def read_unsubscribe_token(token: str) -> UnsubscribeTarget:
    try:
        link = unsign(token, salt=UNSUBSCRIBE_SALT, max_age=None)  # never expires
    except TokenInvalid as error:
        raise TokenInvalid(str(_("This unsubscribe link is not valid."))) from error
    # Erased customers are found too (erasure keeps the row and its public ID), so an old
    # email's link still answers "unsubscribed" and withdrawing again changes nothing. Only a
    # link naming no customer or no marketing purpose at all is refused.
    customer = Customer.objects.filter(public_id=link.public_id).first()
    purpose = Purpose.objects.filter(code=str(link.fields.get("p")), is_marketing=True).first()
    if customer is None or purpose is None:
        raise TokenUnknown(str(_("This unsubscribe link does not lead to a subscription.")))
    return UnsubscribeTarget(customer=customer, purpose=purpose, campaign_public_id=str(link.fields.get("m") or ""))
