"""Run both demo sources on the fixed ports the example ``config.toml`` points at.

    python -m monitor.demo.servers            # review site :8701, Reddit API :8702
    MONITOR_DEMO_REDDIT_CLIENT_ID=demo MONITOR_DEMO_REDDIT_CLIENT_SECRET=demo monitor crawl
"""

from __future__ import annotations

import argparse
import threading

from monitor.demo.reddit_api import start_reddit_api
from monitor.demo.review_site import start_review_site

REVIEW_SITE_PORT = 8701
REDDIT_API_PORT = 8702


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--review-port", type=int, default=REVIEW_SITE_PORT)
    parser.add_argument("--reddit-port", type=int, default=REDDIT_API_PORT)
    args = parser.parse_args(argv)
    review, review_url = start_review_site(port=args.review_port)
    reddit, reddit_url = start_reddit_api(port=args.reddit_port)
    print(f"review site: {review_url}/reviews\nReddit API:  {reddit_url}\n(Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        review.shutdown()
        reddit.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
