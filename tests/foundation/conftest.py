"""One throw-away local stack for the stack tests (lifecycle, outage, secrets), started once per
package by the real CLI (tests/foundation/stack_helpers.py says how it differs from `make up`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from stack_helpers import STACK_DAGS, LocalStack, explain

from iot_core.settings import PROJECT_ROOT


@pytest.fixture(scope="package")
def local_stack():
    # under /tmp: the postgres user (the server's, when we are root) reaches it; `up` makes it 0710
    state_dir = Path(tempfile.mkdtemp(prefix="iot-stack-test-"))
    dags_dir = Path(tempfile.mkdtemp(prefix="iot-stack-dags-"))
    os.chmod(dags_dir, 0o755)
    for name in STACK_DAGS:
        shutil.copy(PROJECT_ROOT / "dags" / name, dags_dir / name)
    stack = LocalStack(state_dir, dags_dir)
    stack.first_up = stack.iot("up")
    yield stack
    r = stack.iot("down", timeout=300)
    shutil.rmtree(state_dir, ignore_errors=True)
    shutil.rmtree(dags_dir, ignore_errors=True)
    assert r.returncode == 0, explain(r)
