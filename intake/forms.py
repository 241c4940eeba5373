from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from common.languages import current_customer_language
from consents.forms import wording_digest
from consents.models import Purpose
from customers.models import Product, normalise_email


class _ConsentBoxes(forms.Form):
    """
    An unticked box per marketing purpose, with the purpose's wording beside it, and a hidden
    fingerprint of the wording shown: a purpose whose wording staff changed while the form was
    open is refused until the visitor has seen the new words (the ledger copies what they saw).
    """

    email = forms.EmailField(
        label=_("Your email address"), max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    first_name = forms.CharField(
        label=_("First name"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    last_name = forms.CharField(
        label=_("Last name"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    # Left empty by people (it is hidden from them); bots fill in every field they find.
    website = forms.CharField(
        label=_("Leave this field empty"),
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    def __init__(self, *args, purposes: list[Purpose], **kwargs):
        super().__init__(*args, **kwargs)
        self.purposes = purposes
        # Each purpose in the page's language, or English where it has none; the sign-up keeps
        # these words and their language (signup_request_create), and records them on confirmation.
        language = current_customer_language()
        self.texts = {purpose.code: purpose.text_in(language) for purpose in purposes}
        for purpose in purposes:
            # Never pre-ticked: consent is the visitor's act, not ours.
            self.fields[f"purpose_{purpose.code}"] = forms.BooleanField(
                label=self.texts[purpose.code].name,
                help_text=self.texts[purpose.code].wording,
                required=False,
                initial=False,
            )
            self.fields[f"wording_{purpose.code}"] = forms.CharField(
                required=False, initial=wording_digest(self.texts[purpose.code].wording), widget=forms.HiddenInput
            )

    def clean_email(self) -> str:
        return normalise_email(self.cleaned_data["email"])

    def clean(self):
        cleaned = super().clean()
        for purpose in self.ticked():
            if cleaned.get(f"wording_{purpose.code}") != wording_digest(self.texts[purpose.code].wording):
                self.add_error(
                    f"purpose_{purpose.code}",
                    _("The wording of this choice has changed since the page was loaded; please read it again."),
                )
        return cleaned

    def ticked(self) -> list[Purpose]:
        data = getattr(self, "cleaned_data", {})
        return [p for p in self.purposes if data.get(f"purpose_{p.code}")]

    @property
    def is_bot(self) -> bool:
        return bool(self.cleaned_data.get("website"))

    def purpose_fields(self):
        return [self[f"purpose_{p.code}"] for p in self.purposes]

    def wording_fields(self):
        return [self[f"wording_{p.code}"] for p in self.purposes]


class SignupForm(_ConsentBoxes):
    def clean(self):
        cleaned = super().clean()
        if not self.errors and not self.ticked():
            raise forms.ValidationError(_("Tick at least one kind of email you would like to receive."))
        return cleaned


class RegistrationForm(_ConsentBoxes):
    product = forms.ModelChoiceField(
        label=_("Product"), queryset=Product.objects.all(), empty_label=_("Choose your product")
    )
    licence_key = forms.CharField(label=_("Licence key"), max_length=100)
    order_reference = forms.CharField(
        label=_("Order number (optional)"),
        max_length=100,
        required=False,
        help_text=_("From the reseller's receipt, e.g. Paddle's txn_… number."),
    )

    field_order = ["email", "first_name", "last_name", "product", "licence_key", "order_reference"]

    def clean_licence_key(self) -> str:
        return self.cleaned_data["licence_key"].strip()


class ConfirmForm(forms.Form):
    """The confirmation page's single button (a GET never confirms: mail scanners follow links)."""
