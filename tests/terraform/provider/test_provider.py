from tf.utils import Diagnostics

from terraform.provider.provider import InterlockProvider


def test_configuration_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("INTERLOCK_API_URL", "https://interlock.example.com/api/v1/")
    monkeypatch.setenv("INTERLOCK_API_KEY", "ilk_x")
    provider, diags = InterlockProvider(), Diagnostics()
    provider.configure_provider(diags, {"api_url": None, "api_key": None})
    assert not diags.diagnostics
    assert provider.client.base == "https://interlock.example.com/api/v1/"
    assert provider.client.key == "ilk_x"


def test_missing_configuration_is_a_diagnostic_per_argument(monkeypatch):
    monkeypatch.delenv("INTERLOCK_API_URL", raising=False)
    monkeypatch.delenv("INTERLOCK_API_KEY", raising=False)
    diags = Diagnostics()
    InterlockProvider().configure_provider(diags, {"api_url": "http://127.0.0.1:8000", "api_key": None})
    [missing] = diags.diagnostics
    assert (missing.summary, missing.path) == ("Missing api_key", ["api_key"])


def test_a_url_without_a_scheme_is_refused():
    diags = Diagnostics()
    InterlockProvider().validate_config(diags, {"api_url": "interlock.example.com", "api_key": None})
    assert [d.path for d in diags.diagnostics] == [["api_url"]]
