"""Fixtures: a private Redis, the servers' database, and real daphne gateways on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import Gateway, RedisServer, WorkerCluster, migrate, server_env

LAYERS = ["memory", "redis"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL when given, else a private redis-server started for this run."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def server_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database the daphne processes share: DATABASE_URL (CI's PostgreSQL) or a SQLite file."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'gateway.sqlite3'}"
    migrate(server_env(url, None))
    return url


@pytest.fixture(scope="session")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


class GatewayFactory:
    """Starts daphne gateways; shared ones are cached by configuration for the whole run."""

    def __init__(self, database_url: str, redis_url: str, logdir: Path) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.logdir = logdir
        self._shared: dict[str, Gateway] = {}
        self._own: list[Gateway] = []

    def env(self, layer: str, settings: dict[str, Any]) -> dict[str, str]:
        # A short drain window (as for clusters): a gateway stopped with a turn still waiting
        # (a clarify nobody answers) exits well within Gateway.stop's timeout instead of being
        # killed, which would also lose its coverage data.
        return server_env(
            self.database_url,
            self.redis_url if layer == "redis" else None,
            {"GATEWAY_SETTINGS": json.dumps({"DRAIN_S": 2.0, **settings})},
        )

    def shared(self, layer: str = "memory", **settings: Any) -> Gateway:
        key = json.dumps([layer, settings], sort_keys=True)
        gateway = self._shared.get(key)
        if gateway is None or gateway.proc.poll() is not None:
            gateway = self._shared[key] = Gateway(self.env(layer, settings), self.logdir, f"shared-{layer}")
        return gateway

    def new(self, layer: str = "memory", cwd: Path | None = None, **settings: Any) -> Gateway:
        """A gateway of the test's own (to kill, restart or configure), its sessions working in ``cwd``."""
        gateway = Gateway(self.env(layer, settings), self.logdir, f"own-{layer}", cwd)
        self._own.append(gateway)
        return gateway

    def stop_all(self) -> None:
        gateways = [*self._shared.values(), *self._own]
        for gateway in gateways:  # every drain at once, then wait for each
            gateway.terminate()
        for gateway in gateways:
            gateway.stop()


@pytest.fixture(scope="session")
def gateways(server_database_url: str, redis_url: str, logdir: Path) -> Iterator[GatewayFactory]:
    factory = GatewayFactory(server_database_url, redis_url, logdir)
    yield factory
    factory.stop_all()


@pytest.fixture(params=LAYERS)
def layer(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def gateway(gateways: GatewayFactory, layer: str) -> Gateway:
    """A shared gateway with default settings, once per channel layer."""
    return gateways.shared(layer)


class ClusterFactory:
    """Clusters of daphne workers (``manage.py gateway_workers``), each on a Redis of its own."""

    def __init__(self, database_url: str, logdir: Path, tmp: pytest.TempPathFactory) -> None:
        self.database_url = database_url
        self.logdir = logdir
        self.tmp = tmp
        self._started: list[tuple[WorkerCluster, RedisServer]] = []

    def __call__(
        self, workers: int = 3, redis_layer: str = "pubsub", **settings: Any
    ) -> tuple[WorkerCluster, RedisServer]:
        redis = RedisServer(self.tmp.mktemp("cluster-redis"))
        defaults = {"LEASE_S": 1.5, "FORWARD_TIMEOUT_S": 3.0, "DRAIN_S": 5.0}
        env = server_env(
            self.database_url,
            redis.url,
            {"GATEWAY_SETTINGS": json.dumps({**defaults, **settings}), "REDIS_LAYER": redis_layer},
        )
        cluster = WorkerCluster(env, self.logdir, workers)
        self._started.append((cluster, redis))
        return cluster, redis

    def stop_all(self) -> None:
        for cluster, redis in self._started:
            cluster.stop()
            redis.stop()


@pytest.fixture
def clusters(
    server_database_url: str, logdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterFactory]:
    factory = ClusterFactory(server_database_url, logdir, tmp_path_factory)
    yield factory
    factory.stop_all()
