"""`python -m terraform.provider`: what Terraform starts (the mirror's launcher
runs this). It speaks the go-plugin handshake and plugin protocol 6 on stdout."""
import sys

from tf.runner import run_provider

from terraform.provider import servicer
from terraform.provider.provider import InterlockProvider


def main(argv=None):
    servicer.install()
    run_provider(InterlockProvider(), argv or sys.argv)


if __name__ == "__main__":
    main()
