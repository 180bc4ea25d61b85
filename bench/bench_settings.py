"""Django settings of the benchmark's gateways: the host project plus the bench's own RPC methods.

``bench/`` is on ``PYTHONPATH`` of every server the bench starts (see ``procs.server_env``).
"""

from hermes_site.settings import *  # noqa: F403
from hermes_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "benchapp"]
