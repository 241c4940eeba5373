from django.urls import path

from . import views_staff

app_name = "consents_staff"

urlpatterns = [
    path("customer/<uuid:public_id>/export.json", views_staff.customer_export_view, name="customer_export"),
]
