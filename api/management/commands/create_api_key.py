from django.core.management.base import BaseCommand, CommandError

from api.models import Scope
from api.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it once (it is stored hashed and cannot be shown again)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who or what uses the key, e.g. 'Shop checkout'.")
        parser.add_argument(
            "--scopes",
            required=True,
            help="Comma-separated: " + ", ".join(scope.value for scope in Scope),
        )

    def handle(self, *args, name: str, scopes: str, **options):
        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        unknown = sorted(set(wanted) - {scope.value for scope in Scope})
        if unknown or not wanted:
            raise CommandError(
                f"Unknown scope(s): {', '.join(unknown) or '(none given)'}. Choose from: "
                + ", ".join(scope.value for scope in Scope)
            )
        if not name.strip() or len(name) > 50:
            raise CommandError("The name must be 1 to 50 characters.")
        api_key, key = api_key_create(name=name.strip(), scopes=wanted, created_by=None)
        self.stderr.write(f"Created {api_key.label} with scopes {', '.join(api_key.scopes)}. The key (shown once):")
        self.stdout.write(key)
