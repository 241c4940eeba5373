from django.urls import include, path


def broken(request, token):
    customer_email = "ada.lovelace@example.com"
    raise RuntimeError(f"something broke while serving {customer_email} with {token}")


urlpatterns = [path("broken/<str:token>/", broken), path("", include("config.urls"))]
