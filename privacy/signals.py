"""
What the privacy app announces to the apps above it, which it never imports: they connect
receivers in their AppConfig.ready().
"""

from django.dispatch import Signal

# A customer's personal data was erased: `customer` (now blanked, public id kept) and `erasure`
# (the CustomerErasure). Sent inside the erasing transaction, after every part erased its data;
# a receiver must not store anything the customer had (there is nothing left to read anyway).
customer_erased = Signal()
