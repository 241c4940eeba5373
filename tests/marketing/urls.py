"""
The site's URLs, plus a stand-in preference page when the consents app does not route one
yet (it is built in parallel): marketing emails link to `consents:preferences`.
"""

from django.http import HttpResponse
from django.urls import include, path

from config.urls import urlpatterns as site_urlpatterns


def _stand_in_preferences(request, token):
    return HttpResponse("Preferences (stand-in for tests)")


urlpatterns = list(site_urlpatterns)
if not any(getattr(pattern, "namespace", None) == "consents" for pattern in site_urlpatterns):
    urlpatterns.insert(
        0,
        path(
            "",
            include(
                ([path("preferences/<str:token>/", _stand_in_preferences, name="preferences")], "consents"),
            ),
        ),
    )
