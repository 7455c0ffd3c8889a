"""`interlock worker ...` as a test runs it: the interlock command, with the
probing interface stood in (tests/workers/probing_stand_in.py) only while
workers.probing is not in the tree."""
import sys

try:
    import workers.probing  # noqa: F401
except ModuleNotFoundError:
    from tests.workers import probing_stand_in

    sys.modules["workers.probing"] = probing_stand_in

from service.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
