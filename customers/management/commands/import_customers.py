import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from customers.imports import ImportIncomplete, ImportRefused, NotUtf8, customers_import, read_csv_file


class Command(BaseCommand):
    help = (
        "Import customers from a CSV file (header: email,first_name,last_name,job_title,company,phone,"
        "address_line1,address_line2,city,region,postal_code,country,language,currency). Every row is "
        "validated before anything is written: one bad row and nothing is imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="path to a UTF-8 CSV file with a header row")
        parser.add_argument(
            "--update", action="store_true", help="update existing customers matched by email instead of refusing them"
        )
        parser.add_argument(
            "--clear-blank",
            action="store_true",
            help="with --update, a blank cell clears the field (without it, a blank cell leaves the field as it is)",
        )
        parser.add_argument(
            "--evidence",
            default="",
            help="how the consent in consent_<purpose> columns was obtained (stored with every consent event)",
        )
        parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if options["clear_blank"] and not options["update"]:
            raise CommandError("--clear-blank only applies to an --update import; nothing was imported")
        # The file is read in one pass that checks it, then again row by row as the import goes:
        # never whole into memory.
        try:
            csv_file = read_csv_file(path)
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file") from None
        except NotUtf8 as error:
            raise CommandError(
                f"{path}: not UTF-8 text ({error.reason} at byte {error.position}); nothing was imported"
            ) from None
        except OSError as error:  # a folder, no permission, a device error
            raise CommandError(f"{path}: cannot be read ({error.strerror or error}); nothing was imported") from None
        except csv.Error as error:  # e.g. a field longer than the csv module accepts
            raise CommandError(f"{path}: not a readable CSV file ({error}); nothing was imported") from None
        except ImportRefused as refused:
            for problem in refused.errors:
                self.stderr.write(str(problem))
            raise CommandError(f"{len(refused.errors)} problem(s) in {path}; nothing was imported.") from None
        headers, rows = csv_file.headers, csv_file.rows
        if csv_file.delimiter != ",":
            self.stdout.write(f"{path}: read as {csv_file.delimiter_name}-separated values.")
        if not rows:
            raise CommandError(f"{path}: no rows below the header; nothing was imported")
        show = not options["no_progress"] and len(rows) >= 1000

        def progress(iterable):
            return tqdm(iterable, total=len(iterable), disable=not show, file=self.stderr._out, unit="row")

        try:
            report = customers_import(
                headers=headers,
                rows=rows,
                update=options["update"],
                clear_blank=options["clear_blank"],
                options={"evidence": options["evidence"].strip()},
                progress=progress,
            )
        except ImportRefused as refused:
            for problem in refused.errors:
                self.stderr.write(str(problem))
            raise CommandError(f"{len(refused.errors)} problem(s) in {path}; nothing was imported.") from None
        except ImportIncomplete as incomplete:
            raise CommandError(f"{path}: {incomplete}") from None
        summary = f"Imported {path}: {report.created} created, {report.updated} updated, {report.unchanged} unchanged."
        if report.counters:
            summary += " " + ", ".join(f"{v} {k}" for k, v in sorted(report.counters.items())) + "."
        self.stdout.write(self.style.SUCCESS(summary))
        for note in report.notes:
            self.stdout.write(note)
