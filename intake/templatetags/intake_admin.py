from django import template
from django.urls import reverse

from ..models import WebhookEvent

register = template.Library()


@register.inclusion_tag("admin/intake/attention.html", takes_context=True)
def intake_attention(context, customer=None):
    """How many reseller notifications need a person (for one customer, or all), for staff who may see them."""
    request = context.get("request")
    if request is None or not request.user.has_perm("intake.view_webhookevent"):
        return {"count": 0}
    events = WebhookEvent.objects.filter(status=WebhookEvent.Status.NEEDS_ATTENTION)
    url = reverse("admin:intake_webhookevent_changelist") + "?status__exact=needs_attention"
    if customer is not None:
        events = events.filter(customer=customer)
        url += f"&customer__id__exact={customer.pk}"
    return {"count": events.count(), "url": url}
