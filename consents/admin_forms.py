"""Staff forms: they validate and convert; the services write."""

from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.utils import timezone

from .models import DataCategory, Disclosure, Method, Purpose

STAFF_METHODS = [
    (Method.PHONE.value, Method.PHONE.label),
    (Method.LETTER.value, Method.LETTER.label),
    (Method.EMAIL.value, Method.EMAIL.label),
    (Method.IN_PERSON.value, Method.IN_PERSON.label),
]


class RecordConsentForm(forms.Form):
    """Consent given or withdrawn by phone, letter, email or in person, recorded by staff."""

    purpose = forms.ModelChoiceField(queryset=Purpose.objects.all(), empty_label=None)
    decision = forms.TypedChoiceField(
        choices=[("granted", "Granted: the customer agreed"), ("withdrawn", "Withdrawn: the customer said no")],
        coerce=lambda value: value == "granted",
        widget=forms.RadioSelect,
    )
    method = forms.ChoiceField(label="How it was given", choices=STAFF_METHODS, widget=forms.RadioSelect)
    given_on = forms.DateField(
        label="Date it was given",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The day the customer told us, not today if it was earlier.",
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Required: how and when, with a reference, e.g. "customer phoned on 12 May, call ref 4471".',
    )

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
        """Now for a decision given today; otherwise noon of the day given (the hour is unknown)."""
        given_on = self.cleaned_data["given_on"]
        if given_on == timezone.localdate():
            return timezone.now()
        return timezone.make_aware(datetime.combine(given_on, time(12, 0)))


class DisclosureAdminForm(forms.ModelForm):
    data_categories = forms.MultipleChoiceField(choices=DataCategory.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Disclosure
        fields = [
            "customer",
            "third_party",
            "data_categories",
            "legal_basis",
            "consent_event",
            "purpose",
            "disclosed_at",
            "reference",
        ]
