"""FLOWMONKEY_API_KEYS: parsed into keys and tenants, refused clearly, never quoted."""

from __future__ import annotations

import pytest

from flowmonkey.api.auth import ApiKey, api_keys_from_env, parse_api_keys
from flowmonkey.settings import SettingsError

K1 = "k1-0123456789abcdef"
K2 = "k2-0123456789abcdef"


def test_keys_with_tenants_and_an_admin_key() -> None:
    keys = api_keys_from_env({"FLOWMONKEY_API_KEYS": f" {K1}=tenant-a , {K2}=* ,"})
    assert keys == (ApiKey(K1, "tenant-a"), ApiKey(K2, None))
    assert not keys[0].admin
    assert keys[1].admin


def test_unset_or_empty_means_no_keys() -> None:
    assert api_keys_from_env({}) == ()
    assert api_keys_from_env({"FLOWMONKEY_API_KEYS": "  "}) == ()


@pytest.mark.parametrize(("value", "says"), [
    (K1, "entry 1 is not KEY=TENANT"),
    (f"{K1}=a,=b", "entry 2 is not KEY=TENANT"),
    ("short=tenant-a", "fewer than 16"),
    (f"{K1}=a,{K1}=b", "entry 2 repeats the key"),
    (f"{K1} x=a", "printable ASCII without spaces"),
    (f"{K1}=", "the tenant must be"),
    (f"{K1}=has space", "the tenant must be"),
    # "/" separates the tenant in the kernel's idempotency scope (tenant/flow/key)
    (f"{K1}=acme/greet", "the tenant must be"),
])
def test_a_bad_value_names_the_variable_and_the_entry_but_never_the_key(
        value: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_api_keys(value)
    message = str(caught.value)
    assert "FLOWMONKEY_API_KEYS" in message
    assert says in message
    assert K1 not in message
    assert "short" not in message


def test_a_key_written_where_the_tenant_goes_is_not_echoed() -> None:
    # the tenant part of "tenant-a=<key>" is the key: the message must not show it
    with pytest.raises(SettingsError) as caught:
        parse_api_keys("tenant-a-is-long-enough=" + "sEcReT_with_underscore+plus")
    assert "sEcReT" not in str(caught.value)


def test_a_key_never_shows_in_a_repr() -> None:
    key = ApiKey(K1, "tenant-a")
    assert K1 not in repr(key)
    assert "tenant-a" in repr(key)


def test_key_parsing_lives_in_the_api_not_in_settings() -> None:
    """settings is below api in the layers: it keeps only the variable's name."""
    import ast
    from pathlib import Path

    import flowmonkey.api.auth as auth
    import flowmonkey.settings as settings

    for name in ("ApiKey", "parse_api_keys", "api_keys_from_env", "MIN_API_KEY_LENGTH",
                 "ADMIN_TENANT", "valid_tenant_id", "TENANT_ID_RULE"):
        assert hasattr(auth, name), name
        assert not hasattr(settings, name), name
    tree = ast.parse(Path(settings.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module} | \
        {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
         for alias in node.names}
    assert not {m for m in imported if m == "flowmonkey.api" or
                m.startswith("flowmonkey.api.")}
