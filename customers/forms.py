from django import forms

from .models import PERSONAL_DETAIL_FIELDS, PREFERENCE_FIELDS, Customer, normalise_email

# The fields a customer may correct themselves, and that the CSV import carries.
DETAIL_FIELDS = [*PERSONAL_DETAIL_FIELDS, *PREFERENCE_FIELDS]
IMPORT_FIELDS = ["email", *DETAIL_FIELDS]
# What staff correct on the customer's admin page besides the address: the details and the
# internal notes (which no third party ever received).
STAFF_FIELDS = [*DETAIL_FIELDS, "notes"]


class CustomerImportRowForm(forms.ModelForm):
    """Validates one CSV row. Uniqueness is checked for the whole file at once by the import."""

    class Meta:
        model = Customer
        fields = IMPORT_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # An empty language in a file means "the default", not "invalid".
        self.fields["language"].required = False

    def clean_email(self) -> str:
        return normalise_email(self.cleaned_data["email"])

    def clean_language(self) -> str:
        return self.cleaned_data.get("language") or "en"

    def clean(self):
        cleaned = super().clean()
        self._validate_unique = False
        return cleaned

    def _get_validation_exclusions(self):
        # Model validation also checks constraints, and customer_email_unique_ci would cost a
        # query per row. customers_import checks every address against existing customers in
        # one query per 5,000 rows and against the rest of the file; the form field still
        # validates the address itself.
        return {*super()._get_validation_exclusions(), "email"}
