from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from workflows.signals import run_events_committed

        from .delivery import on_events_committed

        run_events_committed.connect(on_events_committed, dispatch_uid="hitl-realtime-delivery")
