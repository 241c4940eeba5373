import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a staff superuser if none exists, and print its login once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@example.com")

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=options["username"], email=options["email"], password=password)
        line = "=" * 64
        self.stdout.write(
            f"\n{line}\nA staff account was created (shown only this once):\n"
            f"  username: {options['username']}\n  password: {password}\n{line}\n"
        )
