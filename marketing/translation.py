"""
A campaign's subject, text and HTML body per language (django-modeltranslation): one column
per complete language on the campaign's own row (subject_en, subject_de, ...), so the send path
reads every variant with the campaign it already loads and builds each one once per batch.
Campaign.language_for picks a customer's variant; the fallback language's variant is required.
"""

from modeltranslation.translator import TranslationOptions, register

from .models import Campaign


@register(Campaign)
class CampaignTranslation(TranslationOptions):
    fields = ("subject", "text_body", "html_body")
    # Whichever language is the campaign's fallback must be filled in (Campaign.clean).
    required_languages = ()
