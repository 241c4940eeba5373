from datetime import timedelta

import factory
from django.utils import timezone

from customers.models import Customer, Product, ProductRegistration, ThirdParty


class CustomerFactory(factory.django.DjangoModelFactory[Customer]):
    class Meta:
        model = Customer

    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    company = "Acme Widgets Ltd"
    country = "GB"
    language = "en"
    currency = "GBP"


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ["code"]

    name = "PhotoForge Pro"
    code = "photoforge-pro"


class ResellerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ThirdParty
        django_get_or_create = ["name"]

    name = "Paddle"
    kind = ThirdParty.Kind.RESELLER
    country = "GB"


class RegistrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductRegistration

    customer = factory.SubFactory(CustomerFactory)
    product = factory.SubFactory(ProductFactory)
    reseller = factory.SubFactory(ResellerFactory)
    licence_key = "ABCD-EFGH-IJKL-MNOP"
    order_reference = factory.Sequence(lambda n: f"PAD-{n:08d}")
    purchased_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=3))
