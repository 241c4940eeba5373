"""
What the consents app announces to the apps above it, which it never imports: they connect
receivers in their AppConfig.ready().
"""

from django.dispatch import Signal

# A customer's current consent for a purpose changed (a grant or a withdrawal that is now in
# force, not a decision kept only as history): `event` (the ConsentEvent now deciding) and
# `consent` (the current state). Sent inside the recording transaction; a receiver that acts
# outside it waits for the commit.
consent_changed = Signal()
