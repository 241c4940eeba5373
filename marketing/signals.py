"""
What the marketing app announces to the apps above it, which it never imports: they connect
receivers in their AppConfig.ready().
"""

from django.dispatch import Signal

# An address joined the suppression list (it was not on it before): `suppression` (which keeps
# only the address's hash) and `email` (the address as given, for receivers that may know it).
# Sent inside the adding transaction; a receiver that acts outside it waits for the commit.
suppression_added = Signal()
