"""
The languages customers see. settings.LANGUAGES lists what a customer may prefer; the pages,
mails and purposes are complete in settings.CUSTOMER_LANGUAGES (en, de, fr). A customer or
browser asking for any other language gets English (settings.LANGUAGE_CODE), so a page is
never half in one language and half in another.
"""

from __future__ import annotations

import functools
import gettext

from django.conf import settings
from django.utils import translation
from django.utils.translation import get_language, get_language_info


def complete_languages() -> list[str]:
    return list(settings.CUSTOMER_LANGUAGES)


def customer_language(code: str | None) -> str:
    """The complete language closest to `code` ("de-AT" gives "de"), else the default (English)."""
    if code:
        code = code.lower()
        for candidate in (code, code.split("-")[0]):
            if candidate in settings.CUSTOMER_LANGUAGES:
                return candidate
    return settings.LANGUAGE_CODE


def current_customer_language() -> str:
    """The complete language of the translation active now (the page's or the mail's)."""
    return customer_language(get_language())


def language_name(code: str) -> str:
    """A language's name in that language ("Deutsch"), as a customer looks for it in a list."""
    try:
        return get_language_info(code)["name_local"]
    except KeyError:
        return dict(settings.LANGUAGES).get(code, code)


def language_choices() -> list[tuple[str, str]]:
    """The complete languages for a language switch, each named in itself."""
    return [(code, language_name(code)) for code in settings.CUSTOMER_LANGUAGES]


@functools.lru_cache(maxsize=8)
def _currency_names(language: str) -> dict[str, str]:
    """ISO 4217 names in `language` (pycountry ships their translations), by code."""
    import pycountry

    names = gettext.translation("iso4217", pycountry.LOCALES_DIR, languages=[language], fallback=True)
    return {currency.alpha_3: names.gettext(currency.name) for currency in pycountry.currencies}


def currency_label(code: str, language: str | None = None) -> str:
    """The code and its name in the customer's language, as the currency list shows it (CHF, Schweizer Franken)."""
    name = _currency_names(customer_language(language or get_language())).get(code, "")
    return f"{code} – {name}" if name else code


@functools.lru_cache(maxsize=8)
def _country_names(language: str) -> dict[str, str]:
    """Country names in `language` (django-countries' translations), by ISO 3166 code."""
    from django_countries import countries

    with translation.override(language):
        return {code: str(name) for code, name in countries}


def country_name(code: str, language: str | None = None) -> str:
    """
    A country's name in the active language ("Deutschland"), "" for no country. What a model's
    get_country_display() says, from a table made once per language: that method flattens
    every country's choice on each call (1.6 ms), and a campaign calls it for each message.
    """
    if not code:
        return ""
    return _country_names(language or get_language() or settings.LANGUAGE_CODE).get(str(code), "")
