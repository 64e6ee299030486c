"""The normal form of a URL: what two URLs of one webhook endpoint share."""

from __future__ import annotations

import pytest

from referflow.domain.urls import BadUrl, normal_url


@pytest.mark.parametrize(("url", "normal"), [
    ("https://hooks.example.test/a?b=1", "https://hooks.example.test/a?b=1"),
    ("HTTPS://Hooks.Example.TEST/a?b=1", "https://hooks.example.test/a?b=1"),
    ("https://hooks.example.test:443/a", "https://hooks.example.test/a"),
    ("http://hooks.example.test:80/a", "http://hooks.example.test/a"),
    ("http://hooks.example.test:443/a", "http://hooks.example.test:443/a"),
    ("https://hooks.example.test:8443/a", "https://hooks.example.test:8443/a"),
    ("https://hooks.example.test:/a", "https://hooks.example.test/a"),
    ("https://hooks.example.test", "https://hooks.example.test/"),
    ("https://hooks.example.test/a#frag", "https://hooks.example.test/a"),
    ("https://hooks.example.test/a?", "https://hooks.example.test/a"),
    ("https://[FE80::A]:443/x", "https://[fe80::a]/x"),
    ("https://[::1]:8080/x", "https://[::1]:8080/x"),
    # path and query exactly as given: a receiver may tell them apart
    ("https://hooks.example.test/A/%2f?Q=1&b=2", "https://hooks.example.test/A/%2f?Q=1&b=2"),
])
def test_normal_form(url, normal):
    assert normal_url(url) == normal


@pytest.mark.parametrize(("one", "other"), [
    ("https://h.test/a", "https://h.test/A"), ("https://h.test/a", "https://h.test/a/"),
    ("https://h.test/a?x=1&y=2", "https://h.test/a?y=2&x=1"), ("https://h.test/a", "http://h.test/a"),
    ("https://h.test/a", "https://h.test:8443/a"), ("https://h.test/%41", "https://h.test/A"),
])
def test_different_endpoints_stay_different(one, other):
    assert normal_url(one) != normal_url(other)


@pytest.mark.parametrize("url", ["ftp://h.test/", "https://", "/relative", "https://u:p@h.test/"])
def test_what_is_not_an_http_url_is_refused(url):
    with pytest.raises(BadUrl):
        normal_url(url)
