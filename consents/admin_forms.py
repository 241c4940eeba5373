"""Staff forms: they validate and convert; the services write."""

from __future__ import annotations

from datetime import datetime, time
from typing import cast

from django import forms
from django.conf import settings
from django.contrib.admin import widgets
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join

from common.languages import customer_language
from customers.models import Customer

from .models import DataCategory, Disclosure, DisclosurePurpose, Method, Purpose

STAFF_METHODS = [
    (Method.PHONE.value, Method.PHONE.label),
    (Method.LETTER.value, Method.LETTER.label),
    (Method.EMAIL.value, Method.EMAIL.label),
    (Method.IN_PERSON.value, Method.IN_PERSON.label),
]


class RecordConsentForm(forms.Form):
    """Consent given or withdrawn by phone, letter, email or in person, recorded by staff."""

    # Shown as the admin shows a model's fieldsets (admin.helpers.AdminForm).
    fieldsets = [
        ("The decision", {"fields": ["purpose", "decision"]}),
        ("How and when the customer told us", {"fields": ["method", "language", "given_on", "note"]}),
    ]

    purpose = forms.ModelChoiceField(queryset=Purpose.objects.all(), empty_label=None)
    decision = forms.TypedChoiceField(
        choices=[("granted", "Granted: the customer agreed"), ("withdrawn", "Withdrawn: the customer said no")],
        coerce=lambda value: value == "granted",
        widget=widgets.AdminRadioSelect(attrs={"class": "radiolist"}),
    )
    method = forms.ChoiceField(
        label="How it was given", choices=STAFF_METHODS, widget=widgets.AdminRadioSelect(attrs={"class": "radiolist"})
    )
    language = forms.ChoiceField(
        label="Language the customer was told in",
        choices=[],
        widget=widgets.AdminRadioSelect(attrs={"class": "radiolist"}),
        help_text="The purpose's wording in this language is recorded (the English one where it has none yet).",
    )
    given_on = forms.DateField(
        label="Date it was given",
        widget=widgets.AdminDateWidget,
        help_text="The day the customer told us, not today if it was earlier. A decision older than the one in "
        "force is kept as history and changes nothing.",
    )
    note = forms.CharField(
        widget=widgets.AdminTextareaWidget(attrs={"rows": 3}),
        help_text='Required: how and when, with a reference, e.g. "customer phoned on 12 May, call ref 4471".',
    )

    def __init__(self, *args, customer: Customer | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer
        names = dict(settings.LANGUAGES)
        cast(forms.ChoiceField, self.fields["language"]).choices = [
            (code, names.get(code, code)) for code in settings.CUSTOMER_LANGUAGES
        ]
        self.fields["language"].initial = customer_language(customer.language if customer else None)

    def clean_given_on(self):
        given_on = self.cleaned_data["given_on"]
        if given_on > timezone.localdate():
            raise forms.ValidationError("The date cannot be in the future.")
        return given_on

    def clean_note(self):
        note = self.cleaned_data["note"].strip()
        if not note:
            raise forms.ValidationError("Say how and when the customer gave this decision.")
        return note

    def occurred_at(self) -> datetime:
        """
        Now for a decision given today; otherwise noon of the day given (the hour is unknown),
        but never before the customer's record was created on that same day.
        """
        given_on = self.cleaned_data["given_on"]
        if given_on == timezone.localdate():
            return timezone.now()
        noon = timezone.make_aware(datetime.combine(given_on, time(12, 0)))
        if self.customer is not None and timezone.localdate(self.customer.created_at) == given_on:
            return max(noon, self.customer.created_at)
        return noon


class DisclosureAdminForm(forms.ModelForm):
    data_categories = forms.MultipleChoiceField(
        choices=DataCategory.choices,
        # The admin's styling for a list of choices (labels their own width, not a field label's).
        widget=forms.CheckboxSelectMultiple(attrs={"class": "radiolist"}),
    )

    class Meta:
        model = Disclosure
        fields = [
            "customer",
            "third_party",
            "data_categories",
            "disclosure_purpose",
            "purpose",
            "legal_basis",
            "consent_event",
            "disclosed_at",
            "reference",
        ]
        labels = {"consent_event": "Consent that allows it"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "consent_event" in self.fields:
            self.fields["consent_event"].help_text = qualifying_consents_help()


def qualifying_consents_help() -> str:
    """Which consent allows which purpose of disclosure, as staff edit it under Disclosure purposes."""
    purposes = list(DisclosurePurpose.objects.select_related("consent_purpose"))
    needing = [(p.name, p.consent_purpose.name) for p in purposes if p.consent_purpose is not None]
    without = [p.name for p in purposes if p.consent_purpose is None]
    parts = [
        escape(
            "Only on the basis of consent. Qualifies: the customer's consent in force (granted, not withdrawn "
            "since) to the purpose the disclosure is for. Search by the customer's email address."
        )
    ]
    if needing:
        parts.append(format_html("<ul>{}</ul>", format_html_join("", "<li>{}: consent to {}</li>", needing)))
    if without:
        parts.append(format_html("No consent allows: {}.", "; ".join(without)))
    return format_html_join("", "{}", ((part,) for part in parts))
