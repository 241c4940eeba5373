from django import forms

from consents.models import Method, Purpose
from privacy.models import PrivacyRequest

# Django's own limit on an upload held in memory is 2.5 MB; a customer file may be larger.
IMPORT_MAX_BYTES = 50 * 1024 * 1024


class ImportUploadForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, a header row; comma, semicolon or tab separated.")
    update = forms.BooleanField(
        label="Update existing customers", required=False, help_text="Match by email and update them (--update)."
    )
    clear_blank = forms.BooleanField(
        label="A blank cell clears the field", required=False, help_text="Only with an update (--clear-blank)."
    )
    evidence = forms.CharField(
        label="How the consent in consent_<purpose> columns was obtained",
        required=False,
        max_length=500,
        help_text="Stored with every consent event the file records (--evidence).",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size / 1024 / 1024:.1f} MB; at most {IMPORT_MAX_BYTES // 1024 // 1024} MB "
                "can be imported from the admin (use manage.py import_customers for larger files)."
            )
        return upload


class ConsentDecisionForm(forms.Form):
    """One decision for every selected customer, with one note (source: staff)."""

    purpose = forms.ModelChoiceField(queryset=Purpose.objects.all())
    decision = forms.ChoiceField(choices=[("granted", "Granted"), ("withdrawn", "Withdrawn")], widget=forms.RadioSelect)
    method = forms.ChoiceField(
        label="How the customers told us",
        choices=[
            (m.value, m.label)
            for m in Method
            if m not in (Method.WEB, Method.EMAIL_LINK, Method.IMPORT, Method.CHECKOUT)
        ],
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text="Required: how and when the customers gave this decision. Recorded with each event.",
    )


class PrivacyRequestsForm(forms.Form):
    kind = forms.ChoiceField(choices=PrivacyRequest.Kind.choices)
    channel = forms.ChoiceField(label="Received through", choices=PrivacyRequest.Channel.choices)
    details = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000)
