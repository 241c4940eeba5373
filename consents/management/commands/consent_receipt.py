from django.core.management.base import BaseCommand, CommandError

from customers.models import Customer

from ...receipt_signing import signed_receipt_json
from ...receipts import RECEIPT_FORMATS, ReceiptRefused, signed_receipt


class Command(BaseCommand):
    help = (
        "Write a customer's signed consent receipt to standard output, as the admin download and the API "
        "give it: Kantara Consent Receipt v1.1 (default) or an ISO/IEC TS 27560 record in DPV JSON-LD."
    )

    def add_arguments(self, parser):
        parser.add_argument("customer", metavar="EMAIL_OR_PUBLIC_ID", help="the customer's address or public ID")
        parser.add_argument("--format", choices=RECEIPT_FORMATS, default="kantara", dest="receipt_format")

    def handle(self, *args, customer: str, receipt_format: str, **options):
        found = Customer.objects.by_email_or_public_id(customer).first()
        if found is None:
            raise CommandError("No customer has this address or public ID.")
        try:
            signed = signed_receipt(customer=found, receipt_format=receipt_format)
        except ReceiptRefused as refusal:
            raise CommandError(str(refusal)) from None
        self.stdout.write(signed_receipt_json(signed), ending="")
