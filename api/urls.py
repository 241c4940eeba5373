from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views
from .problems import not_found

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: the CSP allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("v1/customers/", views.CustomerCreateView.as_view(), name="customers"),
    path("v1/customers/lookup/", views.CustomerLookupView.as_view(), name="customer_lookup"),
    path("v1/customers/<uuid:public_id>/", views.CustomerDetailView.as_view(), name="customer"),
    path("v1/customers/<uuid:public_id>/consent/", views.ConsentView.as_view(), name="consent"),
    path("v1/customers/<uuid:public_id>/consent-events/", views.ConsentEventsView.as_view(), name="consent_events"),
    path("v1/customers/<uuid:public_id>/receipt/", views.ReceiptView.as_view(), name="receipt"),
    path("v1/registrations/", views.RegistrationCreateView.as_view(), name="registrations"),
    path("v1/registrations/<int:registration_id>/refund/", views.RegistrationRefundView.as_view(), name="refund"),
    path("v1/suppression/check/", views.MailabilityView.as_view(), name="suppression_check"),
    path("v1/campaigns/<uuid:public_id>/report/", views.CampaignReportView.as_view(), name="campaign_report"),
    re_path(r"^.*$", not_found),
]
