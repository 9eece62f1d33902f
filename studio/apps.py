from django.apps import AppConfig


class StudioConfig(AppConfig):
    name = "studio"
    verbose_name = "Studio (accounts and health)"

    def ready(self) -> None:
        from django.urls import register_converter

        from .ids import IdConverter

        register_converter(IdConverter, "id")  # before any URLconf is imported
