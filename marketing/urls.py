from django.urls import path

from . import views

app_name = "marketing"

urlpatterns = [
    # Mail providers POST exactly the List-Unsubscribe URL (RFC 8058): it ends in "/", and the
    # route without the slash is answered by the view too, never by APPEND_SLASH's redirect.
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("unsubscribe/<str:token>", views.unsubscribe, name="unsubscribe-no-slash"),
]
