"""The import from the admin: upload, the whole file checked, confirm, a worker writes it with progress."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from customers.models import Customer
from dashboard.models import ImportJob

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]

GOOD = (
    "email,first_name,last_name,country,language\n"
    "ada@example.com,Ada,Lovelace,GB,en\n"
    "grace@example.com,Grace,Hopper,US,en\n"
    "alan@example.com,Alan,Turing,GB,en\n"
)
BAD = (
    "email,first_name,last_name,country,language\n"
    "ada@example.com,Ada,Lovelace,GB,en\n"
    "not-an-address,Grace,Hopper,US,en\n"
    "alan@example.com,Alan,Turing,XX,en\n"
    "ada@example.com,Ada,Again,GB,en\n"
)


def upload(client, text: str, name: str = "customers.csv", **fields):
    return client.post(
        "/admin/customer-import/",
        {"file": SimpleUploadedFile(name, text.encode(), content_type="text/csv"), **fields},
    )


def test_a_good_file_is_checked_confirmed_imported_with_progress_and_logged(
    client, support, django_capture_on_commit_callbacks
):
    client.force_login(support)

    # when: the file is uploaded, it is checked and nothing is written yet
    response = upload(client, GOOD)
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url == f"/admin/customer-import/{job.public_id}/"
    assert job.status == ImportJob.Status.CHECKED and (job.rows, job.created, job.updated) == (3, 3, 0)
    assert not Customer.objects.exists()
    page = client.get(response.url).content.decode()
    assert "3 rows checked, no problems" in page and "Import 3 rows" in page

    # when: confirmed, a worker writes it (eager here) once the request commits
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(f"/admin/customer-import/{job.public_id}/confirm/")
    assert confirmed.status_code == 302

    # then
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert (job.created, job.updated, job.unchanged) == (3, 0, 0)
    assert job.uploaded_by == support and job.file_name == "customers.csv"
    assert job.content == ""  # the file's personal data is not kept once imported
    assert job.message == "Imported customers.csv: 3 created, 0 updated, 0 unchanged."
    assert sorted(Customer.objects.values_list("email", flat=True)) == [
        "ada@example.com",
        "alan@example.com",
        "grace@example.com",
    ]
    progress = client.get(f"/admin/customer-import/{job.public_id}/progress/").json()
    assert progress == {
        "status": "done",
        "status_label": "Imported",
        "step": "Done",
        "percent": 100,
        "finished": True,
        "message": job.message,
    }
    assert 'value="100"' in client.get(f"/admin/customer-import/{job.public_id}/").content.decode()


def test_progress_is_written_while_the_worker_imports(support, monkeypatch):
    from dashboard import imports

    monkeypatch.setattr(imports, "PROGRESS_EVERY", 1)
    seen = []
    original = imports._Progress._save

    def spy(self, step, done):
        original(self, step, done)
        seen.append((step, ImportJob.objects.get(pk=self.job.pk).percent))

    monkeypatch.setattr(imports._Progress, "_save", spy)
    job = imports.import_check(data=GOOD.encode(), file_name="customers.csv", staff_user=support)
    job.status = ImportJob.Status.QUEUED
    job.save()

    imports.import_run(job=job)

    steps = [step for step, _percent in seen]
    assert steps[0] == "Checking every row" and "Writing customers" in steps
    percents = [percent for _step, percent in seen]
    assert percents == sorted(percents) and 0 < percents[len(percents) // 2] < 100


def test_a_bad_file_is_refused_with_every_bad_row_and_nothing_is_written(client, support):
    client.force_login(support)

    response = upload(client, BAD, name="bad.csv")

    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.REFUSED and job.content == ""
    page = client.get(response.url).content.decode()
    lines = sorted({error["line"] for error in job.errors})
    assert lines == [3, 4, 5]
    assert "row 3, email: Enter a valid email address." in page
    assert "row 4, country:" in page
    assert "row 5, email: the same address is already on row 2" in page
    assert "problem(s) in bad.csv; nothing was imported." in page
    assert "Import " not in page.split("problems found", 1)[1].split("Upload a corrected file")[0]
    assert not Customer.objects.exists()
    # A refused import cannot be confirmed.
    assert client.post(f"/admin/customer-import/{job.public_id}/confirm/").status_code == 302
    assert not Customer.objects.exists()


def test_the_messages_are_those_of_the_command_line(support, tmp_path):
    from django.core.management import CommandError, call_command

    from dashboard import imports

    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    errors = []
    with pytest.raises(CommandError):
        call_command("import_customers", str(path), "--no-progress", stderr=_Collect(errors))
    job = imports.import_check(data=BAD.encode(), file_name="bad.csv", staff_user=support)
    assert [e["text"] for e in job.errors] == [line for line in errors if line.startswith("row ")]


class _Collect:
    def __init__(self, lines):
        self.lines = lines

    def write(self, text):
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self):
        pass


def test_a_file_that_is_not_text_is_refused_with_a_message(client, support):
    client.force_login(support)
    response = client.post(
        "/admin/customer-import/", {"file": SimpleUploadedFile("x.csv", b"\xff\xfe\x00bad", content_type="text/csv")}
    )
    assert response.status_code == 400
    assert "not UTF-8 text" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_staff_without_the_import_permission_cannot_import(client, marketer):
    client.force_login(marketer)
    assert client.get("/admin/customer-import/").status_code == 403
    assert upload(client, GOOD).status_code == 403
    assert not ImportJob.objects.exists()


def test_a_checked_import_is_confirmed_once(client, support, django_capture_on_commit_callbacks):
    client.force_login(support)
    upload(client, GOOD)
    job = ImportJob.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/customer-import/{job.public_id}/confirm/")
        second = client.post(f"/admin/customer-import/{job.public_id}/confirm/", follow=True)
    assert "cannot be confirmed again" in second.content.decode()
    assert Customer.objects.count() == 3
