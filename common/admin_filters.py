"""List filters for the admin."""

from __future__ import annotations

from django.contrib import admin


class DropdownFilter(admin.ChoicesFieldListFilter):
    """
    A field with many choices (about 250 countries) as one drop-down and an Apply button,
    instead of a list that runs down the page. A plain GET form: it works without script
    (the admin's content security policy allows no inline script) and keeps the other
    filters and the search in hidden fields.
    """

    template = "admin/dropdown_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        # The form sends an empty value for "All": no filter, not "customers with no country".
        if params.get(f"{field_path}__exact") in ([""], ""):
            params.pop(f"{field_path}__exact")
        super().__init__(field, request, params, model, model_admin, field_path)

    def choices(self, changelist):
        ignored = {self.lookup_kwarg, self.lookup_kwarg_isnull}
        self.hidden_params = [
            (name, value)
            for name, values in changelist.filter_params.items()
            if name not in ignored
            for value in (values if isinstance(values, list) else [values])
        ]
        selected = self.lookup_val[0] if isinstance(self.lookup_val, list) and self.lookup_val else self.lookup_val
        yield {"value": "", "display": "All", "selected": not selected}
        for lookup, title in self.field.flatchoices:
            if lookup in (None, ""):
                continue
            yield {"value": str(lookup), "display": title, "selected": str(lookup) == selected}


class DefaultChoiceFilter(admin.SimpleListFilter):
    """
    A list filter that starts on `default` (the work still to do) rather than on "All"; "all"
    must be one of its lookups to see everything. `selected()` is the choice in force.
    """

    default: str = ""

    def selected(self) -> str:
        return self.value() or self.default

    def choices(self, changelist):
        # Django's own choices() would mark "All" as selected when no value is given.
        selected = self.selected()
        for lookup, title in self.lookup_choices:
            yield {
                "selected": selected == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }
