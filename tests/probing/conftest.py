"""Probe fits are small: one BLAS thread each keeps them from oversubscribing a busy 2-core machine."""

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield
