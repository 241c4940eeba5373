"""Public pages refuse a large request body before reading it; staff pages keep Django's limits."""

import io

import pytest
from django.core import mail

pytestmark = pytest.mark.django_db

FIFTY_MB = 50 * 1024 * 1024


class CountingInput(io.BytesIO):
    """A request body that remembers how much of it was read."""

    bytes_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readline(self, size=-1):
        data = super().readline(size)
        self.bytes_read += len(data)
        return data


def _multipart(size: int) -> tuple[bytes, str]:
    boundary = "consentdeskboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="email"\r\n\r\nada@example.com\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"\0" * size
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_50_mb_upload_to_a_public_page_is_refused_unread(client):
    body, content_type = _multipart(FIFTY_MB)
    stream = CountingInput(body)
    response = client.generic(
        "POST", "/preferences/", b"", content_type=content_type, CONTENT_LENGTH=str(len(body)), **{"wsgi.input": stream}
    )
    assert response.status_code == 413
    page = response.content.decode()
    assert "This request is too large" in page
    assert "64 KB" in page
    assert "Traceback" not in page
    assert stream.bytes_read == 0
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("accept_language", "title"),
    [("de-DE,de;q=0.9", "Diese Anfrage ist zu groß"), ("fr", "Cette demande est trop volumineuse")],
)
def test_the_413_page_speaks_the_browsers_language(client, accept_language, title):
    body, content_type = _multipart(FIFTY_MB)
    response = client.generic(
        "POST",
        "/preferences/",
        b"",
        content_type=content_type,
        CONTENT_LENGTH=str(len(body)),
        HTTP_ACCEPT_LANGUAGE=accept_language,
        **{"wsgi.input": CountingInput(body)},
    )
    assert response.status_code == 413
    assert title in response.content.decode()


def test_a_chunked_body_without_a_length_is_refused_on_public_pages(client):
    stream = CountingInput(b"email=ada%40example.com")
    response = client.generic(
        "POST",
        "/preferences/",
        b"",
        content_type="application/x-www-form-urlencoded",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": stream},
    )
    assert response.status_code == 413
    assert stream.bytes_read == 0


def test_a_form_of_ordinary_size_is_accepted(client):
    assert client.post("/preferences/", {"email": "ada@example.com"}).status_code == 200


def test_the_limit_follows_its_setting(client, settings):
    settings.PUBLIC_MAX_BODY_BYTES = 10
    assert client.post("/preferences/", {"email": "ada@example.com"}).status_code == 413
    settings.PUBLIC_MAX_BODY_BYTES = 64 * 1024
    assert client.post("/preferences/", {"email": "ada@example.com"}).status_code == 200


def test_staff_pages_keep_djangos_limits(client):
    # A body over the public limit reaches the admin sign-in form, which answers as usual.
    response = client.post("/admin/login/", {"username": "grace", "password": "x" * 200_000})
    assert response.status_code == 200
    assert "Sign-in failed." in response.content.decode()


def test_a_real_server_answers_a_large_upload_with_the_413_page(live_server):
    import urllib.error
    import urllib.request

    body, content_type = _multipart(2 * 1024 * 1024)
    request = urllib.request.Request(
        f"{live_server.url}/preferences/", data=body, headers={"Content-Type": content_type}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 413
    assert "This request is too large" in refused.value.read().decode()
