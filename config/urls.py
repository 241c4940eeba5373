from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from common.signin import StaffPasswordSignInForm, StaffSignInForm
from consents.views import request_link

from .views import healthz

if settings.STAFF_REQUIRE_2FA:
    # Staff sign in with a password and a TOTP code from an enrolled device.
    from django_otp.admin import OTPAdminSite

    admin.site.__class__ = OTPAdminSite
# One answer for any failed sign-in (the password, the code, or anything else).
admin.site.login_form = StaffSignInForm if settings.STAFF_REQUIRE_2FA else StaffPasswordSignInForm

admin.site.site_header = "ConsentDesk"
admin.site.site_title = "ConsentDesk"
admin.site.index_title = "Customers, consent and campaigns"

urlpatterns = [
    path("admin/export/", include("privacy.urls")),
    path("admin/", admin.site.urls),
    path("preferences/", include("consents.urls")),
    # The form posts to /preferences/; answer the slash-less address too instead of an error.
    path("preferences", request_link),
    path("healthz", healthz, name="healthz"),
    path("", include("intake.urls")),
    path("api/", include("api.urls")),
    path("", include("marketing.urls")),
    # Mail providers' tracking webhooks at django-anymail's standard addresses: /anymail/<esp>/tracking/
    path("anymail/", include("marketing.webhooks")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
