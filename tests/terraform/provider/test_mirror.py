import hashlib
import stat
import zipfile

from terraform.provider import mirror


def test_the_package_is_an_executable_launcher_built_the_same_each_time(tmp_path):
    first = mirror.build(tmp_path / "a", python="/opt/venv/bin/python")
    second = mirror.build(tmp_path / "b", python="/opt/venv/bin/python")
    assert first.relative_to(tmp_path / "a").as_posix() == (
        f"registry.terraform.io/interlock/interlock/terraform-provider-interlock_{mirror.version()}_"
        f"{mirror.target()}.zip")
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    with zipfile.ZipFile(first) as archive:
        [entry] = archive.infolist()
        assert entry.filename == f"terraform-provider-interlock_v{mirror.version()}"
        assert stat.S_IMODE(entry.external_attr >> 16) == 0o755
        assert "exec '/opt/venv/bin/python' -I -m terraform.provider" in archive.read(entry).decode()


def test_the_cli_configuration_points_at_the_mirror_for_this_provider_only(tmp_path):
    text = mirror.cli_config(tmp_path)
    assert f'path    = "{tmp_path}"' in text
    assert text.count('"registry.terraform.io/interlock/interlock"') == 2  # include, and exclude from direct
