"""What holders of a receipt use to check it: the published key, the two commands, the system check."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from consents.checks import receipt_signing_key_check
from consents.models import Source
from consents.receipt_signing import signing_key
from consents.services import consent_grant
from consents.tokens import SensitiveAction, make_sensitive_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada_consents(ada, newsletter):
    consent_grant(customer=ada, purpose=newsletter, source=Source.SIGNUP_FORM)
    return ada


def receipt_text(*args) -> str:
    out = io.StringIO()
    call_command("consent_receipt", *args, stdout=out)
    return out.getvalue()


def verify(path, *args) -> str:
    out = io.StringIO()
    call_command("verify_receipt", str(path), *args, stdout=out)
    return out.getvalue()


def test_the_published_key_set_names_the_signing_key(client):
    response = client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/jwk-set+json"
    (key,) = response.json()["keys"]
    assert key["kid"] == signing_key().kid
    assert (key["use"], key["alg"], key["kty"]) == ("sig", "ES256", "EC")
    assert "d" not in key  # never the private half


def test_the_command_writes_the_receipt_by_address_or_public_id(ada_consents):
    by_address = json.loads(receipt_text("ADA@example.com"))
    by_id = json.loads(receipt_text(str(ada_consents.public_id), "--format", "iso27560"))

    assert by_address["format"] == "kantara"
    assert by_address["receipt"]["piiPrincipalId"] == "ada@example.com"
    assert by_id["receipt"]["dct:conformsTo"] == "https://w3id.org/dpv/schema/dpv-27560#record"


def test_the_command_says_when_there_is_no_such_customer_or_no_receipt(ada_consents, admin_user):
    from privacy.services import customer_erase

    with pytest.raises(CommandError, match="No customer has this address or public ID"):
        receipt_text("nobody@example.com")
    customer_erase(customer=ada_consents, staff_user=admin_user)
    with pytest.raises(CommandError, match="erased"):
        receipt_text(str(ada_consents.public_id))


@pytest.mark.parametrize("receipt_format", ["kantara", "iso27560"])
def test_verify_receipt_accepts_a_receipt_as_issued(ada_consents, tmp_path, client, receipt_format):
    path = tmp_path / "receipt.json"
    path.write_text(receipt_text("ada@example.com", "--format", receipt_format))
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(client.get("/.well-known/jwks.json").content)

    label = {"kantara": "Kantara consent receipt", "iso27560": "ISO/IEC TS 27560 consent record"}[receipt_format]
    assert verify(path).startswith(f"Receipt verified: {label} ")
    assert verify(path, "--jwks", str(jwks)).startswith("Receipt verified")


def test_verify_receipt_fails_on_one_changed_byte(ada_consents, tmp_path):
    text = receipt_text("ada@example.com")
    path = tmp_path / "receipt.json"
    path.write_text(text.replace('"piiPrincipalId": "ada@', '"piiPrincipalId": "eda@', 1))

    with pytest.raises(CommandError, match="Receipt NOT verified: The receipt does not say what was signed"):
        verify(path)


def test_verify_receipt_explains_a_file_that_is_no_receipt(tmp_path):
    path = tmp_path / "receipt.json"
    path.write_text('{"receipt": {}')
    with pytest.raises(CommandError, match="not valid JSON"):
        verify(path)
    path.write_text('{"hello": "world"}')
    with pytest.raises(CommandError, match='no "jws" member'):
        verify(path)
    with pytest.raises(CommandError, match="Cannot read"):
        verify(tmp_path / "missing.json")


def test_verify_receipt_with_another_issuers_key_set_fails(ada_consents, tmp_path):
    from joserfc.jwk import ECKey

    path = tmp_path / "receipt.json"
    path.write_text(receipt_text("ada@example.com"))
    other = ECKey.generate_key("P-256", private=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [other.as_dict(private=False, kid=other.thumbprint(), alg="ES256")]}))

    with pytest.raises(CommandError, match="No key in the key set has the receipt's key id"):
        verify(path, "--jwks", str(jwks))


def test_without_a_signing_key_and_debug_off_the_system_check_fails(settings):
    settings.RECEIPT_SIGNING_KEY = ""
    settings.RECEIPT_DEVELOPMENT_KEY_FILE = None  # as settings.py leaves it with DEBUG off

    (error,) = receipt_signing_key_check(None)

    assert error.id == "consents.E001"
    assert "RECEIPT_SIGNING_KEY is not set" in error.msg


def test_a_signing_key_that_is_no_key_fails_the_system_check(settings, tmp_path):
    (tmp_path / "key.pem").write_text("not a key")
    settings.RECEIPT_SIGNING_KEY = str(tmp_path / "key.pem")

    (error,) = receipt_signing_key_check(None)

    assert error.id == "consents.E002"
    assert "not an unencrypted PEM private key" in error.msg


def test_the_customer_downloads_their_receipt_from_their_data_page(client, ada_consents):
    link = f"/preferences/secure/{make_sensitive_token(ada_consents, SensitiveAction.EXPORT)}/"
    page = client.get(link).content.decode()
    assert "Download my consent receipt (Kantara)" in page
    assert "/.well-known/jwks.json" in page

    download = client.post(link, {"receipt": "kantara"})
    assert download.status_code == 200
    assert download["Content-Disposition"] == (
        f'attachment; filename="consent-receipt-{ada_consents.public_id}-kantara.json"'
    )
    from consents.receipt_signing import receipt_verify
    from consents.receipts import kantara_schema_errors

    signed = json.loads(download.content)
    assert kantara_schema_errors(signed["receipt"]) == []
    assert receipt_verify(signed)["piiPrincipalId"] == "ada@example.com"
    record = json.loads(client.post(link, {"receipt": "iso27560"}).content)
    assert record["format"] == "iso27560"
    # the data export stays the default of the page's first button
    assert json.loads(client.post(link).content)["format"] == "consentdesk.customer-export/1"


def test_a_download_the_page_does_not_offer_is_refused_with_the_page_again(client, ada_consents):
    link = f"/preferences/secure/{make_sensitive_token(ada_consents, SensitiveAction.EXPORT)}/"
    # when: a hand-made POST asks for a receipt format that does not exist
    response = client.post(link, {"receipt": "xml"})
    # then: a 400 with the page and a message, not the data export in its place
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "That download does not exist. Choose one of the buttons below." in page
    assert "Download my consent receipt (Kantara)" in page
