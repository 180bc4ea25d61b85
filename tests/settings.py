"""Settings for the test suite: the host project plus a test-only app of RPC methods."""

from hermes_site.settings import *  # noqa: F403
from hermes_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
