"""
Which texts staff enter per language (django-modeltranslation): a purpose's name and wording and
a policy version's text get one plain column per complete language (name_en, name_de, name_fr)
on the same row. The English column is the fallback; consents.models reads the columns
explicitly (Purpose.text_in, PolicyVersion.text_in), so what is shown and what the ledger copies
never depend on which language happens to be active.
"""

from modeltranslation.translator import TranslationOptions, register

from .models import PolicyVersion, Purpose


@register(Purpose)
class PurposeTranslation(TranslationOptions):
    fields = ("name", "wording")
    required_languages = ("en",)


@register(PolicyVersion)
class PolicyVersionTranslation(TranslationOptions):
    fields = ("text",)
    required_languages = ("en",)
