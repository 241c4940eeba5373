"""
A fast check of one import row for the common case: the same rules as CustomerImportRowForm
(the form fields' and the model's validators), without the form and model machinery.

It only ever vouches for a row: `clean(data)` returns the cleaned values the form would give,
or None for anything it is not sure of (a bad value, an unusual one, a type it does not
know), and the import then binds the form, so every message of a bad row is the form's.
tests/customers/test_import_check.py runs the same files through both and compares.
"""

from __future__ import annotations

import copy
import types
from typing import Any, cast

import phonenumbers
from django import forms
from django.conf import settings
from django.core import validators
from django.core.exceptions import ValidationError
from django.db.models import Field
from django.utils.functional import LazyObject, empty
from phonenumber_field import formfields as phone_formfields
from phonenumber_field.modelfields import PhoneNumberField
from phonenumber_field.phonenumber import PhoneNumber
from phonenumber_field.validators import validate_international_phonenumber

from .forms import IMPORT_FIELDS, CustomerImportRowForm
from .models import Customer
from .validators import contains_card_number, reject_card_numbers, reject_line_breaks

# How many distinct phone numbers (and choice values refused) are remembered: a file's numbers
# mostly differ, so this bounds memory rather than aims at hits.
PHONE_CACHE_SIZE = 4096
REFUSED_CHOICES_KEPT = 1000

# A field's kind in the plan below.
_TEXT, _EMAIL, _PHONE, _CHOICE = range(4)
# A placeholder address for probing a choice field with the whole form.
_PROBE_EMAIL = "probe@example.com"


# The validators of each kind of field the fast check knows (what it checks in their place).
_EMAIL_FORM_VALIDATORS = {
    validators.EmailValidator,
    validators.MaxLengthValidator,
    validators.ProhibitNullCharactersValidator,
}
_PHONE_FORM_VALIDATORS = {
    validate_international_phonenumber,
    validators.MaxLengthValidator,
    validators.ProhibitNullCharactersValidator,
}
_PHONE_MODEL_VALIDATORS = {validate_international_phonenumber, validators.MaxLengthValidator}
_TEXT_FORM_VALIDATORS = {validators.MaxLengthValidator, validators.ProhibitNullCharactersValidator}
_TEXT_MODEL_VALIDATORS = {reject_card_numbers, reject_line_breaks, validators.MaxLengthValidator}


def _resolved(validator: Any) -> Any:
    """
    The validator, or a copy of it whose lazily compiled regexes (EmailValidator's) are the
    compiled patterns themselves: the same patterns, without a proxy on every use.
    """
    lazy = {
        attribute: value
        for attribute in dir(validator)
        if not attribute.startswith("__") and isinstance(value := getattr(validator, attribute, None), LazyObject)
    }
    if not lazy:
        return validator
    resolved = copy.copy(validator)
    for attribute, value in lazy.items():
        if value._wrapped is empty:
            value._setup()  # compile it now
        setattr(resolved, attribute, value._wrapped)
    return resolved


def _kinds(validator_list: list[Any]) -> set[Any]:
    """Each validator: a function as itself, a validator object by its class."""
    return {v if isinstance(v, types.FunctionType) else type(v) for v in validator_list}


class FastRowCheck:
    """
    Checks a row's values as the form would, per field:

    - the address: the form field's own validators, then trimmed and lower-cased (clean_email);
    - text: trimmed, at most max_length, no NUL character, no line break, no card number;
    - the phone: parsed once with phonenumbers (remembered per number), valid, as the form's;
    - country, language, currency: each distinct value is checked once by binding the real
      form to a row holding only that value, and its outcome remembered.

    If a field is not of the shape this knows (another validator, another form field), the
    fast check is off (`enabled` is False) and every row goes through the form.
    """

    def __init__(self, form: CustomerImportRowForm):
        self.form = form
        self.plan: list[tuple[str, int, Any]] = []
        self.enabled = True
        self._choices: dict[str, dict[str, tuple[bool, Any]]] = {}
        self._refused = 0  # choice values remembered as refused
        # Phone numbers as typed -> (the form's PhoneNumber, what the model stores), or None.
        self._phones: dict[str, tuple[PhoneNumber, str] | None] = {}
        for name in IMPORT_FIELDS:
            form_field: Any = form.fields[name]
            # The imported columns are fields, not relations: get_field's hint says either.
            model_field: Any = cast(Field, Customer._meta.get_field(name))
            form_kinds = _kinds(form_field.validators)
            model_kinds = _kinds(model_field.validators)
            if name == "email" and type(form_field) is forms.EmailField:
                # The model's check of the address is excluded (the form says why).
                self.enabled &= form_kinds == _EMAIL_FORM_VALIDATORS
                self.plan.append((name, _EMAIL, tuple(_resolved(v) for v in form_field.validators)))
            elif type(form_field) is phone_formfields.PhoneNumberField and isinstance(model_field, PhoneNumberField):
                self.enabled &= (
                    form_kinds == _PHONE_FORM_VALIDATORS
                    and model_kinds == _PHONE_MODEL_VALIDATORS
                    and form_field.region == model_field.region
                    and form_field.max_length == model_field.max_length
                )
                self.plan.append((name, _PHONE, None))
                self._phone_region, self._phone_max_length = form_field.region, form_field.max_length
            elif isinstance(form_field, forms.ChoiceField):
                self._choices[name] = {}
                self.plan.append((name, _CHOICE, None))
            elif type(form_field) is forms.CharField and not model_field.choices:
                self.enabled &= (
                    form_field.strip
                    and form_kinds == _TEXT_FORM_VALIDATORS
                    and model_kinds == _TEXT_MODEL_VALIDATORS
                    and form_field.max_length == model_field.max_length
                )
                self.plan.append((name, _TEXT, form_field.max_length))
            else:
                self.enabled = False

    def clean(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The form's cleaned_data for this row (a new customer's), or None: ask the form."""
        if not self.enabled:
            return None
        cleaned: dict[str, Any] = {}
        texts: list[str] = []
        for name, kind, param in self.plan:
            value = data.get(name)
            if value is None:
                value = ""
            elif value.__class__ is not str:
                return None
            if kind == _TEXT:
                if value:
                    value = value.strip()
                    if len(value) > param or "\x00" in value or "\n" in value or "\r" in value:
                        return None
                    texts.append(value)
                cleaned[name] = value
            elif kind == _CHOICE:
                known = self._choices[name].get(value)
                if known is None:
                    known = self._probe_choice(name, value)
                if not known[0]:
                    return None
                cleaned[name] = known[1]
            elif kind == _PHONE:
                value = value.strip()
                if value:
                    if value in self._phones:
                        phone = self._phones[value]
                    else:
                        phone = self._phones[value] = self._valid_phone(value)
                        if len(self._phones) > PHONE_CACHE_SIZE:
                            del self._phones[next(iter(self._phones))]  # the oldest
                    if phone is None:
                        return None
                    cleaned[name] = phone[0]
                else:
                    cleaned[name] = ""
            else:  # _EMAIL
                value = value.strip()
                if not value:
                    return None  # required: the form says so
                try:
                    for validator in param:
                        validator(value)
                except ValidationError:
                    return None
                cleaned[name] = value.lower()  # clean_email: normalise_email of the trimmed value
        # The text fields' card-number check at once: a line break (which no value here has)
        # stops a number, so the joined text has one only where a value has one.
        if texts and contains_card_number("\n".join(texts)):
            return None
        return cleaned

    def stored_phone(self, number: Any) -> str | None:
        """What the model field stores for a number this check gave (None: ask the field)."""
        known = self._phones.get(number.raw_input) if isinstance(number, PhoneNumber) else None
        return known[1] if known is not None and known[0] is number else None

    def _valid_phone(self, value: str) -> tuple[PhoneNumber, str] | None:
        """
        The form field's PhoneNumber for this trimmed value and what the model stores for it,
        if the form and the model accept it (else None): parsed and validated once, as
        PhoneNumber.is_valid(), str() and the model field's get_prep_value would.
        """
        try:
            number = PhoneNumber.from_string(value, region=self._phone_region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        text = phonenumbers.format_number(number, _phone_format("PHONENUMBER_DEFAULT_FORMAT"))  # str(number)
        if len(text) > self._phone_max_length or "\x00" in text:  # the length and NUL validators read str()
            return None
        stored = phonenumbers.format_number(number, _phone_format("PHONENUMBER_DB_FORMAT"))
        return number, stored

    def _probe_choice(self, name: str, value: str) -> tuple[bool, Any]:
        """Bind the real form to a row with only this value (and an address): its outcome."""
        form = CustomerImportRowForm(data={"email": _PROBE_EMAIL, name: value})
        outcome: tuple[bool, Any] = (True, form.cleaned_data[name]) if form.is_valid() else (False, None)
        if outcome[0] or self._refused < REFUSED_CHOICES_KEPT:
            self._refused += not outcome[0]
            self._choices[name][value] = outcome
        return outcome


def _phone_format(setting: str) -> int:
    return PhoneNumber.format_map[getattr(settings, setting, "E164")]
