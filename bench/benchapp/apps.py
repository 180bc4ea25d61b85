from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "benchapp"
    label = "gateway_benchapp"

    def ready(self) -> None:
        from . import methods  # noqa: F401
