"""
The consent ledger's guard on PostgreSQL, declared on `ConsentEvent.Meta.triggers` and installed
by migrations (django-pgtrigger). Other databases rely on the model and queryset guards alone.

- UPDATE and DELETE of an event are refused, except the one sanctioned rewrite: with the
  transaction-local setting `consentdesk.ledger_redaction` on (consents.services does this for
  erasure and log retention), an UPDATE may only clear the IP address (to NULL), the user agent
  and the note (to ''), and must set `redacted_at`. Every other column is compared as a whole
  row (`to_jsonb(NEW)` less the redactable columns), so a column added later is protected
  without anyone listing it here.
- TRUNCATE is refused by a statement-level trigger (row triggers do not see it).

pgtrigger's installation template lets any session skip a trigger by naming it in the
`pgtrigger.ignore` setting. A setting any role may change is no guard, so these triggers are
compiled from the same template without that check.
"""

from __future__ import annotations

import re

import pgtrigger
from pgtrigger import compiler

REDACTION_SETTING = "consentdesk.ledger_redaction"

_IGNORE_CHECK = re.compile(
    r"IF \(\{ignore_func_name\}\(TG_NAME\) IS TRUE\) THEN\s+"
    r"IF \(TG_OP = 'DELETE'\) THEN\s+RETURN OLD;\s+ELSE\s+RETURN NEW;\s+END IF;\s+END IF;\s*"
)


class UnbypassableTriggerSql(compiler.UpsertTriggerSql):
    """pgtrigger's installation SQL without the `pgtrigger.ignore` escape hatch."""

    def get_template(self) -> str:
        template, found = _IGNORE_CHECK.subn("", super().get_template())
        if found != 1:
            # A new pgtrigger template: look at it before trusting it with the ledger.
            raise RuntimeError("django-pgtrigger's trigger template changed; review consents/triggers.py.")
        return template


class UnbypassableTrigger(pgtrigger.Trigger):
    def compile(self, model) -> compiler.Trigger:
        compiled = super().compile(model)
        return compiler.Trigger(name=compiled.name, sql=UnbypassableTriggerSql(**compiled.sql.kwargs))


_REFUSE = """
    RAISE EXCEPTION 'consent events are never changed or deleted (% refused on the consent ledger)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
"""

# {columns.x} is the column of field x (pgtrigger.Func formats the model's columns in).
_REDACTABLE = "ARRAY['{columns.ip_address}', '{columns.user_agent}', '{columns.note}', '{columns.redacted_at}']"

LEDGER_APPEND_ONLY = UnbypassableTrigger(
    name="consent_ledger_append_only",
    when=pgtrigger.Before,
    operation=pgtrigger.Update | pgtrigger.Delete,
    func=pgtrigger.Func(
        f"""
    IF TG_OP = 'UPDATE'
       AND coalesce(current_setting('{REDACTION_SETTING}', true), '') = 'on'
       AND to_jsonb(NEW) - {_REDACTABLE} = to_jsonb(OLD) - {_REDACTABLE}
       AND (NEW.{{columns.ip_address}} IS NULL OR NEW.{{columns.ip_address}} = OLD.{{columns.ip_address}})
       AND (NEW.{{columns.user_agent}} = '' OR NEW.{{columns.user_agent}} = OLD.{{columns.user_agent}})
       AND (NEW.{{columns.note}} = '' OR NEW.{{columns.note}} = OLD.{{columns.note}})
       AND NEW.{{columns.redacted_at}} IS NOT NULL
    THEN
        RETURN NEW;
    END IF;
    {_REFUSE}
"""
    ),
)

LEDGER_NO_TRUNCATE = UnbypassableTrigger(
    name="consent_ledger_no_truncate",
    level=pgtrigger.Statement,
    when=pgtrigger.Before,
    operation=pgtrigger.Truncate,
    func=_REFUSE,
)
