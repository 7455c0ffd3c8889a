"""Installing the provider without a registry: a Terraform filesystem mirror.

    python -m terraform.provider.mirror [--out terraform/build/mirror]

writes `<out>/registry.terraform.io/interlock/interlock/terraform-provider-interlock_<version>_<os>_<arch>.zip`
(the mirror's "packed" layout) holding a launcher that runs this Python
environment's provider, and prints the CLI configuration that points Terraform
at the mirror for `interlock/interlock` only. The zip is byte-for-byte the same
each time it is built from the same environment, so lock files stay valid.
"""
from __future__ import annotations

import argparse
import platform
import stat
import sys
import zipfile
from pathlib import Path

from terraform.provider.provider import SOURCE, version

EXECUTABLE = "terraform-provider-interlock"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "build" / "mirror"
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def target() -> str:
    machine = platform.machine().lower()
    return f"{platform.system().lower()}_{ARCHES.get(machine, machine)}"


def launcher(python: str) -> str:
    # -I: neither the working directory Terraform runs in nor PYTHON* variables
    # may shadow the installed packages.
    return (f"#!/bin/sh\n# The Interlock Terraform provider {version()}.\n"
            f"exec '{python}' -I -m terraform.provider \"$@\"\n")


def build(out: Path = DEFAULT_OUT, python: str = sys.executable) -> Path:
    folder = Path(out) / SOURCE
    folder.mkdir(parents=True, exist_ok=True)
    package = folder / f"{EXECUTABLE}_{version()}_{target()}.zip"
    entry = zipfile.ZipInfo(f"{EXECUTABLE}_v{version()}", date_time=ZIP_EPOCH)
    entry.external_attr = (stat.S_IFREG | 0o755) << 16
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(entry, launcher(python))
    return package


def cli_config(mirror: Path) -> str:
    """The `provider_installation` block for ~/.terraformrc (or TF_CLI_CONFIG_FILE)."""
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{Path(mirror).resolve()}"\n'
        f'    include = ["{SOURCE}"]\n'
        "  }\n"
        "  direct {\n"
        f'    exclude = ["{SOURCE}"]\n'
        "  }\n"
        "}\n"
    )


def main(argv=None) -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the mirror directory (default {DEFAULT_OUT})")
    args = cli.parse_args(argv)
    package = build(args.out)
    print(f"Built {package}\n\nAdd this to your Terraform CLI configuration (~/.terraformrc):\n")
    print(cli_config(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
