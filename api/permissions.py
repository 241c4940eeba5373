from rest_framework.permissions import BasePermission

from .models import ApiKey


class HasScope(BasePermission):
    """The view names the scope each method needs (`required_scopes = {"GET": "customers:read"}`)."""

    message = "This API key does not have the scope this call needs."

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False
        scope = view.required_scopes.get(request.method)
        if scope is None:
            return False
        if not api_key.has_scope(scope):
            self.message = f"This API key does not have the scope {scope}."
            return False
        return True
