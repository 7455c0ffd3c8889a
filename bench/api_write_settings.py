"""Settings of the server `bench/api_write.py` starts: production's, with a URL
conf that adds the peer endpoint (bench/api_write_peer.py) to the whole API."""
from service.settings import *  # noqa: F403

ROOT_URLCONF = "bench.api_write_peer"
