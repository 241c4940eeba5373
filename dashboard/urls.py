"""
The dashboard's pages, under /admin/ (config/urls.py includes them before the admin's own
URLs, so /admin/ itself is the dashboard). Each is wrapped by the admin site's own view
decorator: staff only, sign-in (and second factor) as for any admin page.
"""

from django.contrib import admin
from django.urls import path

from . import views

app_name = "dashboard"


def staff(view):
    return admin.site.admin_view(view)


urlpatterns = [
    path("", staff(views.home), name="home"),
    path("models/", staff(views.models_index), name="models"),
    path("analysis/", staff(views.analysis_page), name="analysis"),
    path("analysis/download/", staff(views.analysis_download), name="analysis_download"),
    path("customer-import/", staff(views.import_upload), name="import_upload"),
    path("customer-import/<uuid:public_id>/", staff(views.import_job), name="import_job"),
    path("customer-import/<uuid:public_id>/progress/", staff(views.import_progress), name="import_progress"),
    path("customer-import/<uuid:public_id>/confirm/", staff(views.import_confirm), name="import_confirm"),
]
