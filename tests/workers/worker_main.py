"""`interlock ...` as the worker tests run it: the interlock command, with the
probing interface stood in (tests/workers/probing_stand_in.py) only while
workers.probing is not in the tree."""
import sys

from tests.workers.probing_stand_in import install_unless_present

install_unless_present()

from service.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
