"""Fixtures of the generator tests: a small fleet over a fixed week, and a clean MongoDB."""

from __future__ import annotations

import pytest
from gen_support import START

from generators import COLLECTIONS, REJECTED_COLLECTION, build_fleet
from generators.writer import PROGRESS_COLLECTION


@pytest.fixture(scope="session")
def fleet():
    return build_fleet(users=8, sensors=8, seed=7, anchor=START)


@pytest.fixture
def clean_mongo(services):
    """The test database with the generator's collections dropped (they are ours for this test)."""
    from iot_core.connections import mongo_client, mongo_db

    client = mongo_client(services)
    db = mongo_db(client, services)
    for name in (*COLLECTIONS, REJECTED_COLLECTION, PROGRESS_COLLECTION):
        db.drop_collection(name)
    yield db
    client.close()
