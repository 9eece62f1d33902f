from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The site: the URL map, Home, the demo workspace and the `studio` run command. It sits above
    every app and brings them together; nothing imports it."""

    name = "portal"
    verbose_name = "Portal"
