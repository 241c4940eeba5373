from django.urls import path

from . import views

app_name = "privacy_staff"

urlpatterns = [
    path("customer/<uuid:public_id>/export.json", views.customer_export_view, name="customer_export"),
]
