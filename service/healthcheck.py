"""`python -m service.healthcheck`: exit 0 when this machine's server is ready (/readyz),
1 otherwise. For container health checks; uses one of RUNG_TOKENS when they are set."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from service.settings import Settings


def main() -> int:
    settings = Settings()
    request = urllib.request.Request(f"http://127.0.0.1:{settings.port}/readyz")
    for pair in (settings.tokens or "").split(","):
        token = pair.strip().partition(":")[2]
        if token:
            request.add_header("Authorization", f"Bearer {token}")
            break
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
