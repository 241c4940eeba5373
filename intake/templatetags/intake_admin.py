from django import template

from ..admin import needing_attention

register = template.Library()


@register.inclusion_tag("admin/intake/attention.html", takes_context=True)
def intake_attention(context, customer=None):
    """How many reseller notifications need a person (for one customer, or all), for staff who may see them."""
    request = context.get("request")
    if request is None:
        return {"count": 0}
    count, url = needing_attention(request.user, customer)
    return {"count": count, "url": url}
