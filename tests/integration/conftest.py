"""Fixtures for the integration tests (real Apache + mod_fcgid + php-cgi).

`server(**options)` creates and (unless start=False) starts a harness.Server (options: see
harness.Server's docstring); every server a test made is stopped at teardown, even when the test
failed, its conf/logs/beancounter state copied into the test's tmp_path (server<N>/), and its root
removed. A server that needed SIGKILL to stop fails the test at teardown.

Nothing is skipped: a machine without apache2, php-cgi or mod_fcgid fails every test with the list of
what is missing (`make test` installs them through scripts/deps.sh).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


@pytest.fixture(scope="session")
def stack():
    missing = harness.missing_stack()
    if missing:
        pytest.fail("the integration tests need: %s. Install with `sh scripts/deps.sh test` (as root) "
                    "or `make test`." % "; ".join(missing), pytrace=False)
    harness.cleanup_stale_roots()
    return True


@pytest.fixture
def server(stack, tmp_path, request):
    """Factory: server(start=True, **options) -> harness.Server."""
    created = []

    def make(start=True, **options):
        name = "%s-%d" % (request.node.name, len(created))
        s = harness.Server(name=name, artifacts=str(tmp_path / ("server%d" % len(created))), **options)
        created.append(s)
        if start:
            s.start()
        return s

    yield make

    problems = []
    for s in reversed(created):
        try:
            left = s.close()
            if left:
                problems.append("%s: processes still running after stop, SIGKILLed: %s" % (s.root, left))
        except Exception as e:  # keep closing the others
            problems.append("%s: %r" % (s.root, e))
    if problems:
        pytest.fail("teardown: " + "; ".join(problems), pytrace=False)
