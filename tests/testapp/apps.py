from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "gateway_testapp"

    def ready(self) -> None:
        from . import methods  # noqa: F401
