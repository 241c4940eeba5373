from django.urls import path, re_path

from . import views

app_name = "intake"

urlpatterns = [
    # Paddle posts exactly the URL it was given: answer it with and without the final slash.
    re_path(r"^webhooks/paddle/?$", views.paddle_webhook, name="paddle_webhook"),
    path("signup/", views.signup, name="signup"),
    path("register/", views.register, name="register"),
    # Token routes answer with and without the final slash (a POST to a redirect loses its body).
    re_path(r"^signup/confirm/(?P<token>[A-Za-z0-9_\-:.]+)/?$", views.signup_confirm, name="signup_confirm"),
]
