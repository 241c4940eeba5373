from django.conf import settings
from django.utils.translation import get_language

from common.languages import language_choices


def site(request):
    return {
        "COMPANY_NAME": settings.COMPANY_NAME,
        "COMPANY_POSTAL_ADDRESS": settings.COMPANY_POSTAL_ADDRESS,
        "SITE_URL": settings.SITE_URL,
        "LANGUAGE_CODE": get_language(),
        "customer_languages": language_choices(),
        # Pages reached through a customer's link are in the customer's preferred language.
        "language_from_customer": getattr(request, "language_from_customer", False),
    }
