from django import forms
from django.contrib import admin, messages
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as UnusedPackageKey

from .models import ApiKey, Scope
from .services import api_key_create

# The package's own key model is not used: ours carries scopes.
if admin.site.is_registered(UnusedPackageKey):
    admin.site.unregister(UnusedPackageKey)


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expiry_date", "revoked"]


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    """Superusers and privacy officers create keys; the key is shown once, in the message after saving."""

    form = ApiKeyForm
    # djangorestframework-api-key types its own lists as tuples of a fixed length: ours are longer.
    list_display = ["prefix", "name", "scope_list", "created", "last_used_at", "expiry_date", "_has_expired", "revoked"]  # type: ignore[assignment]
    list_filter = ["revoked", "created"]  # type: ignore[assignment]
    search_fields = ["name", "prefix"]  # type: ignore[assignment]
    readonly_fields = ["prefix", "created", "last_used_at", "created_by"]

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            # A key's scopes and name are fixed once it exists: make a new key instead.
            return [*self.readonly_fields, "name", "scopes"] + (["revoked"] if obj.revoked else [])
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super(APIKeyModelAdmin, self).save_model(request, obj, form, change)
            return
        created, key = api_key_create(name=obj.name, scopes=form.cleaned_data["scopes"], created_by=request.user)
        if obj.expiry_date:
            created.expiry_date = obj.expiry_date
            created.save(update_fields=["expiry_date"])
        obj.pk = created.pk
        self.message_user(
            request,
            f"The API key for {created.name} is: {key} — copy it now; it is stored hashed and will not be shown again.",
            level=messages.WARNING,
        )
