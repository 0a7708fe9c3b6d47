"""CHATOPS_EGRESS_*: where the allowlist's proxy reaches out, and whom it trusts."""

from pathlib import Path

import pytest

from chatops.app.settings import Settings
from chatops.core.errors import ConfigError
from sandbox.egress_tls import make_authority


def test_defaults_are_the_bridge_and_the_system_authorities():
    settings = Settings.from_env({})
    assert settings.egress_network == "bridge"
    assert settings.egress_ca() == b""


def test_an_extra_authority_is_read_from_its_file(tmp_path: Path):
    pem = make_authority("corporate").certificate_pem
    (tmp_path / "ca.pem").write_bytes(pem)
    settings = Settings.from_env({"CHATOPS_EGRESS_NETWORK": "egress",
                                  "CHATOPS_EGRESS_CA_FILE": str(tmp_path / "ca.pem")})
    assert settings.egress_network == "egress"
    assert settings.egress_ca() == pem


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot be read"), (b"not a certificate", "holds no PEM certificate")])
def test_a_bad_authority_file_is_a_config_error(tmp_path: Path, content, message):
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"CHATOPS_EGRESS_CA_FILE": str(path)}).egress_ca()
