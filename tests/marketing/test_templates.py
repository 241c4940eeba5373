import pytest
from django.core.exceptions import ValidationError

from marketing.models import Campaign
from marketing.rendering import TemplateRefused, compile_template

from .helpers import purpose

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "template",
    [
        "{{ settings.SECRET_KEY }}",
        "{{ customer.email }}",
        "{{ first_name.__class__ }}",
        "{{ first_name|upper }}",
        "{% debug %}",
        "{% load static %}",
        '{% include "base.html" %}',
        "{# a comment #}",
        "{{ request }}",
        "Hello {{ first_name ",
    ],
)
def test_the_sandbox_refuses_anything_but_placeholders(template):
    with pytest.raises(TemplateRefused):
        compile_template(template)


def test_placeholders_render_plain_strings_and_a_default():
    template = compile_template('Hi {{ first_name|default:"there" }} from {{company}}!')
    assert template.render({"first_name": "", "company": "Acme"}) == "Hi there from Acme!"
    assert template.render({"first_name": "<b>", "company": "A&B"}, escape=True) == "Hi &lt;b&gt; from A&amp;B!"


def test_a_campaign_with_a_broken_template_is_refused_on_save_with_the_error(purposes):
    campaign = Campaign(
        name="Leaky",
        purpose=purpose("newsletter"),
        subject="Hello {{ first_name }}",
        text_body="Line one\nYour key: {{ settings.SECRET_KEY }}",
        html_body="<p>{% debug %}</p>",
    )
    with pytest.raises(ValidationError) as refused:
        campaign.full_clean()
    errors = refused.value.message_dict
    # The English variant's fields (each language has its own).
    assert "Line 2: “{{ settings.SECRET_KEY }}” is not allowed" in errors["text_body_en"][0]
    assert "“{% debug %}</p>” is not allowed" in errors["html_body_en"][0]
    assert "subject_en" not in errors


def test_a_campaign_cannot_use_a_purpose_that_is_not_marketing(purposes):
    campaign = Campaign(name="Analysis", purpose=purpose("internal_analysis"), subject="Hi", text_body="Hello")
    with pytest.raises(ValidationError) as refused:
        campaign.full_clean()
    assert "purpose" in refused.value.message_dict
