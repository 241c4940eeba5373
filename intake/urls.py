from django.urls import re_path

from . import views

app_name = "intake"

urlpatterns = [
    # Paddle posts exactly the URL it was given: answer it with and without the final slash.
    re_path(r"^webhooks/paddle/?$", views.paddle_webhook, name="paddle_webhook"),
]
