from django.core.management.base import BaseCommand, CommandError

from customers.demo import load_demo_data


class Command(BaseCommand):
    help = "Load demo products, resellers and a few hundred customers (only once: running it again does nothing)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=300)

    def handle(self, *args, **options):
        if options["customers"] < 1:
            raise CommandError("--customers must be 1 or more.")
        created = load_demo_data(customers=options["customers"])
        if created:
            self.stdout.write(self.style.SUCCESS(f"Loaded demo data: {created} customers."))
        else:
            self.stdout.write("Demo data already loaded.")
