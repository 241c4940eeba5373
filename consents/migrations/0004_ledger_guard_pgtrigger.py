"""
The ledger's guard moves from the hand-written trigger of 0003 to triggers declared on the
model (consents/triggers.py, installed by django-pgtrigger): UPDATE and DELETE refused, TRUNCATE
refused, and redaction limited to clearing. A Consent row can only name an event of its own
customer and purpose carrying its decision: a composite foreign key on PostgreSQL. SQLite has
neither (a composite key there means rebuilding the table, and a trigger naming the ledger breaks
every later rebuild of it); consents.services is the only writer there.
"""

from importlib import import_module

import consents.triggers
import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models

DROP_HAND_WRITTEN_GUARD = """
DROP TRIGGER IF EXISTS consents_ledger_guard ON consents_consentevent;
DROP FUNCTION IF EXISTS consents_ledger_guard();
"""

# Deliberately not deferrable: a state that names the wrong event fails at the statement
# that writes it, not at a commit far away.
POSTGRES_CONSENT_NAMES_ITS_DECISION = """
ALTER TABLE consents_consent ADD CONSTRAINT consent_names_its_decision
    FOREIGN KEY (event_id, customer_id, purpose_id, granted)
    REFERENCES consents_consentevent (id, customer_id, purpose_id, granted);
"""
POSTGRES_DROP_CONSENT_NAMES_ITS_DECISION = """
ALTER TABLE consents_consent DROP CONSTRAINT IF EXISTS consent_names_its_decision;
"""


def drop_hand_written_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_HAND_WRITTEN_GUARD, params=None)


def restore_hand_written_guard(apps, schema_editor):
    import_module("consents.migrations.0003_ledger_guard_trigger").create_guard(apps, schema_editor)


def consent_names_its_decision(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_CONSENT_NAMES_ITS_DECISION, params=None)


def drop_consent_names_its_decision(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP_CONSENT_NAMES_ITS_DECISION, params=None)


class Migration(migrations.Migration):
    dependencies = [("consents", "0003_ledger_guard_trigger")]

    operations = [
        migrations.RunPython(drop_hand_written_guard, restore_hand_written_guard),
        pgtrigger.migrations.AddTrigger(
            model_name='consentevent',
            trigger=pgtrigger.compiler.Trigger(name='consent_ledger_append_only', sql=consents.triggers.UnbypassableTriggerSql(func="\n    IF TG_OP = 'UPDATE'\n       AND coalesce(current_setting('consentdesk.ledger_redaction', true), '') = 'on'\n       AND to_jsonb(NEW) - ARRAY['ip_address', 'user_agent', 'note', 'redacted_at'] = to_jsonb(OLD) - ARRAY['ip_address', 'user_agent', 'note', 'redacted_at']\n       AND (NEW.ip_address IS NULL OR NEW.ip_address = OLD.ip_address)\n       AND (NEW.user_agent = '' OR NEW.user_agent = OLD.user_agent)\n       AND (NEW.note = '' OR NEW.note = OLD.note)\n       AND NEW.redacted_at IS NOT NULL\n    THEN\n        RETURN NEW;\n    END IF;\n    \n    RAISE EXCEPTION 'consent events are never changed or deleted (% refused on the consent ledger)', TG_OP\n        USING ERRCODE = 'insufficient_privilege';\n\n", hash='46fda41e18a51237643dd9b9944bd3832d5acf78', operation='UPDATE OR DELETE', pgid='pgtrigger_consent_ledger_append_only_04492', table='consents_consentevent', when='BEFORE')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='consentevent',
            trigger=pgtrigger.compiler.Trigger(name='consent_ledger_no_truncate', sql=consents.triggers.UnbypassableTriggerSql(func="\n    RAISE EXCEPTION 'consent events are never changed or deleted (% refused on the consent ledger)', TG_OP\n        USING ERRCODE = 'insufficient_privilege';\n", hash='63520408f038713ac737e3136ba166d6bcb5205b', level='STATEMENT', operation='TRUNCATE', pgid='pgtrigger_consent_ledger_no_truncate_1cc20', table='consents_consentevent', when='BEFORE')),
        ),
        migrations.AddConstraint(
            model_name='consentevent',
            constraint=models.UniqueConstraint(fields=('id', 'customer', 'purpose', 'granted'), name='consent_event_decision_key'),
        ),
        migrations.RunPython(consent_names_its_decision, drop_consent_names_its_decision),
    ]
