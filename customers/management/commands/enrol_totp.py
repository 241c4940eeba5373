import qrcode
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Enrol a TOTP device (authenticator app) for a staff user and print the code to scan."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="a name for the device")

    def handle(self, *args, **options):
        User = get_user_model()
        try:
            user = User.objects.get(username=options["username"])
        except User.DoesNotExist:
            raise CommandError(f"No user named {options['username']!r}.") from None
        if not user.is_staff:
            raise CommandError(f"{user.username} is not staff: only staff sign in to the admin.")
        device = TOTPDevice.objects.create(user=user, name=options["name"], confirmed=True)
        uri = device.config_url
        qr = qrcode.QRCode(border=1)
        qr.add_data(device.config_url)
        qr.print_ascii(out=self.stdout._out, invert=True)
        self.stdout.write(f"\nScan the code above, or enter this address in the authenticator app:\n{uri}\n")
