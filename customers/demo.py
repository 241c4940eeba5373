"""Realistic demo data for `make run`: products, resellers and a few hundred customers."""

import random
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from faker import Faker

from .models import Customer, Product, ProductRegistration, ThirdParty

PRODUCTS = [
    ("PhotoForge Pro", "photoforge-pro"),
    ("DiskSense", "disksense"),
    ("TypeWise", "typewise"),
    ("BackupVault", "backupvault"),
]
THIRD_PARTIES = [
    ("Paddle", ThirdParty.Kind.RESELLER, "GB", "https://www.paddle.com", "Paddle DPA 2024-03"),
    ("cleverbridge", ThirdParty.Kind.RESELLER, "DE", "https://www.cleverbridge.com", "cleverbridge AVV 2023-11"),
    ("Stripe", ThirdParty.Kind.PAYMENT_PROCESSOR, "IE", "https://stripe.com", "Stripe DPA 2024-01"),
    ("Postmark", ThirdParty.Kind.EMAIL, "US", "https://postmarkapp.com", "Postmark DPA 2024-06"),
    ("Softpedia Distribution", ThirdParty.Kind.DISTRIBUTOR, "RO", "https://www.softpedia.com", ""),
]
LOCALES = [
    ("en_US", "US", "en", "USD"),
    ("en_GB", "GB", "en", "GBP"),
    ("de_DE", "DE", "de", "EUR"),
    ("fr_FR", "FR", "fr", "EUR"),
    ("es_ES", "ES", "es", "EUR"),
    ("it_IT", "IT", "it", "EUR"),
    ("nl_NL", "NL", "nl", "EUR"),
    ("pl_PL", "PL", "pl", "PLN"),
    ("sv_SE", "SE", "sv", "SEK"),
    ("ja_JP", "JP", "ja", "JPY"),
]
DEMO_MARKER_PRODUCT = "photoforge-pro"

# The apps above add their demo data for the new customers (consent decisions, campaigns);
# each registers `load(customers)` from its AppConfig.ready().
_demo_loaders: dict[str, Callable[[list[Customer]], None]] = {}


def register_demo_loader(name: str, load: Callable[[list[Customer]], None]) -> None:
    _demo_loaders[name] = load


def demo_loaded() -> bool:
    return Product.objects.filter(code=DEMO_MARKER_PRODUCT).exists()


@transaction.atomic
def load_demo_data(*, customers: int = 300, seed: int = 2026) -> int:
    """Create the demo data unless it is already there; returns how many customers were created."""
    if demo_loaded():
        return 0
    rng = random.Random(seed)
    Faker.seed(seed)
    fakers = {locale: Faker(locale) for locale, *_ in LOCALES}
    products = [Product.objects.create(name=name, code=code) for name, code in PRODUCTS]
    parties = [
        ThirdParty.objects.create(name=name, kind=kind, country=country, website=site, dpa_reference=dpa)
        for name, kind, country, site, dpa in THIRD_PARTIES
    ]
    resellers = [p for p in parties if p.kind == ThirdParty.Kind.RESELLER]
    now = timezone.now()
    created = []
    for number in range(customers):
        locale, country, language, currency = rng.choice(LOCALES)
        fake = fakers[locale]
        first, last = fake.first_name(), fake.last_name()
        customer = Customer(
            email=f"{Faker('en_US').user_name()}.{number}@example.{rng.choice(['com', 'org', 'net'])}",
            first_name=first,
            last_name=last,
            job_title=fake.job()[:150] if rng.random() < 0.7 else "",
            company=fake.company()[:200] if rng.random() < 0.6 else "",
            address_line1=" ".join(fake.street_address().split())[:200],
            city=fake.city()[:100],
            postal_code=fake.postcode()[:20],
            country=country,
            language=language,
            currency=currency,
            signup_ip=fake.ipv4_public(),
            created_at=now - timedelta(days=rng.randint(0, 900), minutes=rng.randint(0, 1440)),
        )
        customer.save()
        created.append(customer)
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            product = rng.choice(products)
            reseller = rng.choice(resellers)
            purchased = customer.created_at + timedelta(days=rng.randint(0, 60), minutes=rng.randint(0, 600))
            ProductRegistration.objects.create(
                customer=customer,
                product=product,
                licence_key="-".join(fake.bothify("????#").upper() for _ in range(4)),
                edition=rng.choice(["Standard", "Professional", "Business"]),
                version=f"{rng.randint(3, 9)}.{rng.randint(0, 9)}",
                reseller=reseller,
                order_reference=(
                    f"{'PAD' if reseller.name == 'Paddle' else 'CB'}-{rng.randint(10**7, 10**8 - 1)}-{number}"
                ),
                purchased_at=min(purchased, now),
            )
    for load in list(_demo_loaders.values()):
        load(created)
    return len(created)
