from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Demo chat"

    def ready(self) -> None:
        from . import presence  # noqa: F401 - connects the signal receivers
