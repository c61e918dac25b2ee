"""The test suite itself in a hostile room: a machine without nginx (issue 19, item 10)."""

from __future__ import annotations

import gc
import warnings

import pytest

from . import compose
from .test_e2e_compose import Nginx


def test_without_nginx_the_proxy_tests_skip_and_leave_no_file_open(monkeypatch, tmp_path):
    """The compose helper opened nginx's log before it knew nginx was missing: the skip left the file open,
    and under `filterwarnings = error` its ResourceWarning failed whichever test ran next."""
    monkeypatch.setattr(compose, "nginx_binary", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    made = []
    monkeypatch.setattr(compose, "render_nginx", lambda environment: made.append(tmp_path) or tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(pytest.skip.Exception, match="nginx is not installed"):
            Nginx({"NGINX_PORT": "1"})
        gc.collect()
    assert not [warning for warning in caught if issubclass(warning.category, ResourceWarning)], caught
    assert not made  # nothing rendered for an nginx that is not there
