"""The sandbox world shared by the discovery and Tavily fallback tests of this folder."""
from collections.abc import Iterator

import pytest

from nightly_pipeline_sandbox.runner import Sandbox
from nightly_pipeline_tests.kit.discovery import fast_sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with fast_sandbox() as running:
        yield running
