import functools
import hashlib
from dataclasses import dataclass
from html import escape
from typing import cast

from django import forms
from django.conf import settings
from django.forms.utils import flatatt
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from common.languages import currency_label, current_customer_language, language_name
from customers.forms import DETAIL_FIELDS
from customers.models import Customer, normalise_email

from .models import PurposeText
from .selectors import PurposeState


class LinkRequestForm(forms.Form):
    email = forms.EmailField(
        label=_("Your email address"),
        max_length=254,
        help_text=_("The address our emails reach you at."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def clean_email(self) -> str:
        return normalise_email(self.cleaned_data["email"])


@dataclass(frozen=True)
class PurposeRow:
    """A purpose's line on the preference page: its choice, its checkbox and what the box showed."""

    choice: PurposeState
    name: str
    id: str
    checked: bool
    shown_name: str
    shown: str  # "1": the page showed the box ticked, "0": unticked
    wording_name: str
    wording: str  # a digest of the wording shown
    text: PurposeText  # the name and wording shown, in the page's language or the fallback


def wording_digest(wording: str) -> str:
    """A short fingerprint of a purpose's wording, to tell whether the page showed the current one."""
    return hashlib.sha256(wording.encode()).hexdigest()[:16]


class PreferencesForm(forms.Form):
    """
    One checkbox per purpose, named after the purpose's stable code, and beside each a hidden
    record of how the box was shown and of the wording shown. A save changes only the boxes
    the customer changed: a page left open while they unsubscribed from an email, then saved
    for another purpose, does not take back that unsubscribe. A change to a purpose whose
    wording staff edited while the page was open is refused until the customer has seen the
    new wording, so the ledger never records wording the customer was not shown.
    """

    SHOWN = {"1": True, "0": False}

    def __init__(self, *args, choices: list[PurposeState], **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = choices
        # Each purpose in the page's language (or English where it has none): what is shown,
        # fingerprinted and, on saving, recorded.
        language = current_customer_language()
        self.texts = {choice.purpose.code: choice.purpose.text_in(language) for choice in choices}
        for choice in choices:
            self.fields[self.field_name(choice.purpose.code)] = forms.BooleanField(
                label=self.texts[choice.purpose.code].name, required=False, initial=choice.granted
            )
            # Free text, read leniently: anything but "1" or "0" counts as not said.
            self.fields[self.shown_name(choice.purpose.code)] = forms.CharField(
                required=False, initial="1" if choice.granted else "0", widget=forms.HiddenInput
            )
            self.fields[self.wording_name(choice.purpose.code)] = forms.CharField(
                required=False,
                initial=wording_digest(self.texts[choice.purpose.code].wording),
                widget=forms.HiddenInput,
            )

    @staticmethod
    def field_name(code: str) -> str:
        return f"purpose_{code}"

    @staticmethod
    def shown_name(code: str) -> str:
        return f"shown_{code}"

    @staticmethod
    def wording_name(code: str) -> str:
        return f"wording_{code}"

    def clean(self):
        cleaned = super().clean()
        changed = self.wanted()
        for choice in self.choices:
            code = choice.purpose.code
            seen = cleaned.get(self.wording_name(code))
            if code in changed and seen and seen != wording_digest(self.texts[code].wording):
                self.add_error(
                    None,
                    _(
                        "The wording of “%(name)s” changed while this page was open. "
                        "Please read it again below and save once more."
                    )
                    % {"name": self.texts[code].name},
                )
        return cleaned

    def wanted(self) -> dict[str, bool]:
        """
        The purposes whose box the customer changed, with what they want now. A form that
        does not say how a box was shown (a page from before this field existed) is compared
        with the current state.
        """
        wanted = {}
        for choice in self.choices:
            code = choice.purpose.code
            want = self.cleaned_data.get(self.field_name(code), False)
            shown = self.SHOWN.get(self.cleaned_data.get(self.shown_name(code)) or "")
            if want != (choice.granted if shown is None else shown):
                wanted[code] = want
        return wanted

    def rows(self) -> list[PurposeRow]:
        """
        One row per purpose for the template, in display order, with the checkbox's name, id and
        state worked out here once: the page is the busiest a customer sees, and the template
        engine asking each bound field for them several times was a third of its rendering.
        """
        rows = []
        for choice in self.choices:
            field = self[self.field_name(choice.purpose.code)]
            shown = self[self.shown_name(choice.purpose.code)]
            shown_value = shown.value() if shown.value() in self.SHOWN else shown.initial
            rows.append(
                PurposeRow(
                    choice,
                    field.html_name,
                    field.auto_id,
                    bool(field.value()),
                    shown.html_name,
                    shown_value,
                    # Always the wording on this page, also when it is shown again after a refusal.
                    self.add_prefix(self.wording_name(choice.purpose.code)),
                    wording_digest(self.texts[choice.purpose.code].wording),
                    self.texts[choice.purpose.code],
                )
            )
        return rows


class QuickSelect(forms.Select):
    """
    A select whose options are written in Python. Django's select template includes a
    template per option: the country and currency lists (430 options) took about half the
    preference page's time that way (bench/bench_web.py). Same markup, same attributes.
    """

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        parts = []
        for group_name, options, _index in widget["optgroups"]:
            # html.escape rather than Django's lazy-aware escape: the labels are plain text here.
            rows = "".join(
                f'<option value="{escape(str(o["value"]))}"{" selected" if o["selected"] else ""}>'
                f"{escape(str(o['label']))}</option>"
                for o in options
            )
            parts.append(f'<optgroup label="{escape(str(group_name))}">{rows}</optgroup>' if group_name else rows)
        return format_html('<select name="{}"{}>{}</select>', name, flatatt(widget["attrs"]), mark_safe("".join(parts)))  # noqa: S308


@functools.lru_cache(maxsize=16)
def _country_choices(language: str | None) -> list[tuple[str, str]]:
    """The sorted, translated country list, once per language rather than once per page view."""
    field = Customer._meta.get_field("country").formfield()
    assert isinstance(field, forms.ChoiceField)
    choices = cast(list[tuple[str, str]], field.choices)  # a country field's choices are (code, name) pairs
    return [(str(code), str(name)) for code, name in choices]


class DetailsForm(forms.ModelForm):
    """The details a customer may correct themselves. It validates; customer_update writes."""

    class Meta:
        model = Customer
        fields = DETAIL_FIELDS
        widgets = {"country": QuickSelect, "language": QuickSelect, "currency": QuickSelect}

    AUTOCOMPLETE = {
        "first_name": "given-name",
        "last_name": "family-name",
        "job_title": "organization-title",
        "company": "organization",
        "phone": "tel",
        "address_line1": "address-line1",
        "address_line2": "address-line2",
        "city": "address-level2",
        "region": "address-level1",
        "postal_code": "postal-code",
        "country": "country",
        "language": "off",
        "currency": "off",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            field.widget.attrs.setdefault("autocomplete", self.AUTOCOMPLETE.get(name, "off"))
        self.fields["phone"].widget.input_type = "tel"
        self.fields["country"].choices = _country_choices(get_language())
        # Each language named in itself, as a customer looks for their own in the list.
        self.fields["language"].choices = [(code, language_name(code)) for code, _name in settings.LANGUAGES]
        self.fields["currency"].choices = [
            (code, currency_label(code) if code else label) for code, label in self.fields["currency"].choices
        ]

    def clean(self):
        cleaned = super().clean()
        # The customer's own row is the only one this form touches: no uniqueness to check.
        self._validate_unique = False
        return cleaned


class EmailChangeForm(forms.Form):
    new_email = forms.EmailField(
        label=_("New email address"),
        max_length=254,
        help_text=_("We will send a link to the new address; the change takes effect when you follow it."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def __init__(self, *args, customer: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer

    def clean_new_email(self) -> str:
        email = normalise_email(self.cleaned_data["new_email"])
        if email == self.customer.email:
            raise forms.ValidationError(_("This is already your address."))
        return email
