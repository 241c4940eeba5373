"""
`manage.py migrate` as the owner role: with MIGRATION_DATABASE_URL set (PostgreSQL), migrations
run as that role, which owns the tables, and the runtime role of DATABASE_URL is then granted its
row rights (common/database_roles.py). Without it, Django's migrate as it always was.
"""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.core.management.commands import migrate
from django.db import connections

from common import database_roles


class Command(migrate.Command):
    help = (
        "Apply migrations; with MIGRATION_DATABASE_URL set, as that owner role, then grant the "
        "runtime role of DATABASE_URL its rights."
    )

    def handle(self, *args, **options):
        alias = options["database"]
        try:
            with database_roles.as_owner(alias) as runtime_role:
                super().handle(*args, **options)
                if runtime_role:
                    database_roles.grant_runtime_role(connections[alias], runtime_role=runtime_role)
                    if options["verbosity"] >= 1:
                        self.stdout.write(f"Granted the runtime role {runtime_role!r} its rights.")
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
