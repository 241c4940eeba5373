from django.conf import settings


def site(request):
    return {
        "COMPANY_NAME": settings.COMPANY_NAME,
        "COMPANY_POSTAL_ADDRESS": settings.COMPANY_POSTAL_ADDRESS,
        "SITE_URL": settings.SITE_URL,
    }
