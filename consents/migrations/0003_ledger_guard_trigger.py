"""
On PostgreSQL the ledger defends itself: a trigger refuses UPDATE and DELETE on
consents_consentevent. The one sanctioned rewrite (erasure and log retention redacting IP
address, user agent and note) sets the transaction-local `consentdesk.ledger_redaction` to
'on', and even then only those columns and `redacted_at` may change. Other databases rely
on the model and queryset guards alone.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION consents_ledger_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND coalesce(current_setting('consentdesk.ledger_redaction', true), '') = 'on'
       AND NEW.id IS NOT DISTINCT FROM OLD.id
       AND NEW.customer_id IS NOT DISTINCT FROM OLD.customer_id
       AND NEW.purpose_id IS NOT DISTINCT FROM OLD.purpose_id
       AND NEW.granted IS NOT DISTINCT FROM OLD.granted
       AND NEW.occurred_at IS NOT DISTINCT FROM OLD.occurred_at
       AND NEW.recorded_at IS NOT DISTINCT FROM OLD.recorded_at
       AND NEW.source IS NOT DISTINCT FROM OLD.source
       AND NEW.method IS NOT DISTINCT FROM OLD.method
       AND NEW.policy_version_id IS NOT DISTINCT FROM OLD.policy_version_id
       AND NEW.wording IS NOT DISTINCT FROM OLD.wording
       AND NEW.staff_user_id IS NOT DISTINCT FROM OLD.staff_user_id
       AND NEW.reference IS NOT DISTINCT FROM OLD.reference
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'consent events are never changed or deleted (% refused on the consent ledger)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS consents_ledger_guard ON consents_consentevent;
CREATE TRIGGER consents_ledger_guard
    BEFORE UPDATE OR DELETE ON consents_consentevent
    FOR EACH ROW EXECUTE FUNCTION consents_ledger_guard();
"""

DROP = """
DROP TRIGGER IF EXISTS consents_ledger_guard ON consents_consentevent;
DROP FUNCTION IF EXISTS consents_ledger_guard();
"""


def create_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("consents", "0002_purposes_and_first_policy")]

    operations = [migrations.RunPython(create_guard, drop_guard)]
