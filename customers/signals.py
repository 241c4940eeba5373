"""
What the customers app announces to the apps above it, which it never imports: they connect
receivers in their AppConfig.ready().
"""

from django.dispatch import Signal

# A customer or staff corrected the customer's details (not an import): every third party
# that received the data must be told (GDPR Art. 19). Sent inside the correcting transaction
# with `customer` and `fields` (the names of the corrected fields).
customer_corrected = Signal()

# A customer's details changed, whoever changed them (the customer, staff, the API, a reseller):
# `customer`, `fields` (the names of the changed fields), `changed_by` (CustomerChange.ChangedBy).
# Sent inside the changing transaction; a receiver that acts outside it waits for the commit.
customer_updated = Signal()

# A staff member opened the customer's page in admin: `customer`, `staff_user`.
customer_viewed = Signal()

# A staff member's look-up (the admin's autocomplete of a customer field) showed them these
# customers: `customers` (the page of results), `staff_user`, `field` ("app.model.field").
customers_looked_up = Signal()
