"""Shared fixtures: storage backends (memory, sqlite, a real etcd)."""

from __future__ import annotations

import pytest

from pinnace.storage.base import Store, open_store
from tests.support.etcd import etcd_binary, run_etcd


@pytest.fixture(scope="session")
def etcd_endpoint():
    """A real etcd on loopback for the whole session (skipped where etcd is absent,
    which CI never is: .ci/run installs etcd-server)."""
    if etcd_binary() is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    with run_etcd() as endpoint:
        yield endpoint


_etcd_prefix_counter = iter(range(1_000_000))


@pytest.fixture(params=["memory", "sqlite", "etcd"])
async def store(request, tmp_path) -> Store:
    if request.param == "memory":
        s = open_store("memory://")
    elif request.param == "sqlite":
        s = open_store(f"sqlite://{tmp_path}/state.db")
    else:
        endpoint = request.getfixturevalue("etcd_endpoint")
        # One etcd serves the whole session: each test gets its own key root.
        from pinnace.storage.etcd import EtcdStore

        s = EtcdStore([endpoint], root=f"/test{next(_etcd_prefix_counter)}")
    yield s
    await s.close()
