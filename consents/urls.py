from django.urls import path

from . import views

app_name = "consents"


def token_path(route: str, view, name: str) -> list:
    """
    A route that ends in a token, answered with and without its final slash: with
    APPEND_SLASH a URL missing the slash would otherwise get a redirect (GET) or an error
    (POST) before the view runs. reverse() gives the form with the slash.
    """
    return [path(f"{route}/", view, name=name), path(route, view)]


urlpatterns = [
    path("", views.request_link, name="request_link"),
    path("policy/", views.policy, name="policy"),
    *token_path("email/<str:token>", views.email_confirm, "email_confirm"),
    *token_path("email-undo/<str:token>", views.email_undo, "email_undo"),
    *token_path("secure/<str:token>", views.sensitive, "sensitive"),
    *token_path("<str:token>", views.preferences, "preferences"),
    *token_path("<str:token>/unsubscribe-all", views.unsubscribe_all, "unsubscribe_all"),
    *token_path("<str:token>/details", views.details, "details"),
    # "Email me a link to ...": the link for one sensitive action goes to the address on file.
    *token_path("<str:token>/send-link/<str:action>", views.sensitive_link_request, "sensitive_link_request"),
]
