from django.contrib import admin

from .models import Effect


@admin.register(Effect)
class EffectAdmin(admin.ModelAdmin):
    """Read-only: what the example workflows did to the (simulated) outside world."""

    list_display = ("created_at", "kind", "target", "run", "requests")
    list_filter = ("kind",)
    search_fields = ("target", "key")
    readonly_fields = ("run", "kind", "target", "data", "key", "requests", "created_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
