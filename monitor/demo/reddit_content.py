"""Hand-written Reddit posts and comments about "Acme Coffee" for the demo Reddit API.

The things are built in Reddit's own JSON shape (the fields of the t3/t1 objects
in real listings, as recorded in the test cassettes), so the collector sees
exactly what it would see from reddit.com. Times are relative to when the
content is built, so the demo inbox always looks current; posts that tell of
yesterday evening's incident downtown (see ``review_week``) are dated to it.
"""

from __future__ import annotations

import html
import re
import time
import zlib
from datetime import datetime, timedelta
from datetime import time as dt_time
from typing import Any

from monitor.demo.review_content import SITE_TZ

DEMO_SUBREDDITS = ("acmecoffee", "springfield")
BRAND_ACCOUNT = "AcmeCoffeeHQ"

# When a thing was posted: hours before now, or (days ago, "HH:MM") local time in the demo city, for
# posts whose text names a time of day ("around 5pm") that must match the day the review site tells of.
When = float | tuple[int, str]

# (key, subreddit, author, when, score, title, selftext or link URL)
POSTS: list[tuple[str, str, str, When, int, str, str]] = [
    (
        "wait", "acmecoffee", "latte_larry", (2, "09:10"), 14,
        "Acme Coffee downtown: 35 minute wait for a latte this morning",
        "Got to the downtown Acme Coffee around 8:15 this morning, two baristas on and a line out the door. "
        "Waited 35 minutes for a small oat latte and was late for work. Mobile orders seemed to get priority "
        "over everyone actually standing in line.",
    ),
    (
        "rude", "springfield", "mkoval", (3, "08:30"), 9,
        "Rude barista at Acme Coffee on Main St last night",
        "Asked if they could remake my drink because it was lukewarm and the guy at the counter rolled his eyes "
        "and said \"it's supposed to be like that\". This was around 9pm. Not the first time with the evening crew.",
    ),
    (
        "wrong", "acmecoffee", "gate_b12", (2, "07:30"), 6,
        "Airport Acme got my order wrong twice",
        "Ordered a decaf americano at the airport Acme Coffee (Terminal B) before my 6:40 flight and got a regular "
        "drip. Went back, got a caramel thing that wasn't mine. Ended up boarding with nothing.",
    ),
    (
        "machine", "acmecoffee", "brewed_awakening", (1, "18:05"), 23,
        "Acme Coffee downtown: espresso machine down, 45 minute wait",
        "Got to the downtown Acme Coffee around 5pm. The espresso machine was broken and nobody said anything "
        "until after we'd paid. 45 minutes later I got a drip coffee instead of my latte. The evening crew looked "
        "completely overwhelmed.",
    ),
    (
        "sick", "acmecoffee", "throwaway_tummy", (5, "09:00"), 31,
        "Got sick after the sandwich from Acme Coffee",
        "Had the turkey pesto sandwich from the downtown Acme Coffee on Sunday around noon and was sick all night. "
        "The bread was soggy and the turkey tasted off. Has anyone else had this? I've reported it to the county "
        "health department.",
    ),
    (
        "praise", "acmecoffee", "sunny_sips", (1, "10:10"), 57,
        "Shoutout to Maria at Acme Coffee downtown",
        "Maria at the downtown Acme Coffee remembered my order after one visit and made my whole morning. "
        "The new cold brew is great too. Best coffee in town, honestly.",
    ),
    (
        "question", "springfield", "redeye_rita", 3, 4,
        "Does the airport Acme open before 6am?",
        "Flying out at 6:15 on Thursday. Does the airport Acme Coffee open before 6am, or should I plan on the "
        "vending machine?",
    ),
    (
        "news", "springfield", "springfield_news_bot", (3, "14:00"), 112,
        "Acme Coffee is opening a third location on Elm Street",
        "https://news.springfield.example/business/acme-coffee-elm-street",
    ),
    (
        "zh", "acmecoffee", "xiaoming_2024", (1, "08:15"), 3,
        "Acme Coffee 机场店排队太久了",
        "昨晚在机场的Acme Coffee排了四十分钟，店员态度也很差，咖啡还是凉的。不会再去了。",
    ),
]

# (key, parent key, author, when, score, body); a parent key is a post or an earlier comment.
COMMENTS: list[tuple[str, str, str, When, int, str]] = [
    (
        "wait_same", "wait", "commuter_cam", (2, "09:40"), 6,
        "Same here. The mobile orders jump the line every morning, they need a separate counter for them.",
    ),
    (
        "wait_brand", "wait", BRAND_ACCOUNT, (2, "10:15"), 3,
        "Sorry about the wait this morning - we were two baristas short downtown. DM us your order details "
        "and we'll make it right.",
    ),
    (
        "machine_same", "machine", "commuter_cam", (1, "19:00"), 6,
        "Same here at the downtown store. Got there at 5:30 and left at 6:10 with nothing. Two people on the "
        "evening shift, a line to the door and nobody telling us anything. Awful.",
    ),
    ("question_answer", "question", "tsa_tim", 2, 5, "Airport Acme opens at 5:30 on weekdays, at least in Terminal B."),
    (
        "question_confirm", "question_answer", "redeye_rita", 1, 2,
        "Can confirm, got a cortado there at 5:45 last week. Staff were super friendly.",
    ),
    (
        "sick_same", "sick", "[deleted]", (4, "20:00"), 12,
        "Same sandwich on Saturday, same result. Something is wrong with their fridge.",
    ),
    (
        "praise_maria", "praise", "brunch_bea", (1, "12:30"), 8,
        "Maria is the best! The downtown morning staff are great.",
    ),
    ("zh_reply", "zh", "lin_coffee", (1, "10:40"), 2, "同意，机场店的咖啡一直不太行，但是市中心店的拿铁很好喝。"),
    (
        "rude_evening", "rude", "main_st_local", (3, "10:05"), 4,
        "The evening crew on Main St has been like that for weeks. The morning staff are lovely.",
    ),
    (
        "machine_more", "machine", "brew_bro", (1, "21:30"), 3,
        "Was there around 6. They were still taking mobile orders they couldn't make. Downtown only gave me a "
        "refund after I asked twice.",
    ),
]

# Ids in Reddit's base-36 style; fixed offsets keep them stable between runs and realistic in length.
_POST_ID_BASE = 3_010_000_000
_COMMENT_ID_BASE = 36_500_000_000
_SUBREDDIT_IDS = {"acmecoffee": "t5_8k2x1q", "springfield": "t5_2qh8v"}


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
        if not number:
            return out


def _slug(title: str) -> str:
    # Reddit's permalink slug: lowercase ASCII words joined by "_", cut to about 50 characters.
    words = re.findall(r"[a-z0-9]+", title.lower())
    slug = "_".join(words)[:50].rstrip("_")
    return slug or "_"


def _user_fullname(author: str) -> str:
    # Stable across runs (unlike hash()), so stored raw JSON does not churn between demo crawls.
    return f"t2_{base36(zlib.crc32(author.encode()) % 36**8)}"


def _md_html(text: str) -> str:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>\n" for p in text.split("\n\n") if p)
    return f'<div class="md">{paragraphs}</div>'


def submission_data(
    *, post_id: str, subreddit: str, author: str, created_utc: float, title: str, selftext: str = "",
    link_url: str | None = None, score: int = 1, num_comments: int = 0,
) -> dict[str, Any]:
    """A t3 ``data`` object with the fields Reddit returns in listings."""
    permalink = f"/r/{subreddit}/comments/{post_id}/{_slug(title)}/"
    is_self = link_url is None
    domain = f"self.{subreddit}" if is_self else re.sub(r"^https?://([^/]+).*$", r"\1", link_url or "")
    return {
        "approved_by": None, "archived": False, "author": author,
        "author_flair_css_class": None, "author_flair_text": None,
        "author_fullname": None if author == "[deleted]" else _user_fullname(author),
        "banned_by": None, "clicked": False, "contest_mode": False,
        "created": created_utc, "created_utc": created_utc, "distinguished": None, "domain": domain,
        "downs": 0, "edited": False, "gilded": 0, "hidden": False, "hide_score": False, "id": post_id,
        "is_self": is_self, "likes": None, "link_flair_css_class": None, "link_flair_text": None, "locked": False,
        "media": None, "media_embed": {}, "mod_reports": [], "name": f"t3_{post_id}", "num_comments": num_comments,
        "num_reports": None, "over_18": False, "permalink": permalink, "quarantine": False, "removal_reason": None,
        "report_reasons": None, "saved": False, "score": score, "secure_media": None, "secure_media_embed": {},
        "selftext": selftext,
        "selftext_html": f"<!-- SC_OFF -->{_md_html(selftext)}<!-- SC_ON -->" if selftext else None,
        "spoiler": False, "stickied": False, "subreddit": subreddit,
        "subreddit_id": _SUBREDDIT_IDS.get(subreddit.lower(), "t5_2qh0u"), "subreddit_name_prefixed": f"r/{subreddit}",
        "suggested_sort": None, "thumbnail": "self" if is_self else "default", "title": title, "ups": score,
        "url": f"https://www.reddit.com{permalink}" if is_self else link_url, "user_reports": [], "visited": False,
    }


def comment_data(
    *, comment_id: str, post: dict[str, Any], parent_id: str, author: str, created_utc: float, body: str,
    score: int = 1,
) -> dict[str, Any]:
    """A t1 ``data`` object as it appears in ``/r/{sub}/comments``; ``post`` is the t3 data it belongs to."""
    return {
        "approved_by": None, "archived": False, "author": author,
        "author_flair_css_class": None, "author_flair_text": None,
        "author_fullname": None if author == "[deleted]" else _user_fullname(author),
        "banned_by": None, "body": body, "body_html": _md_html(body), "controversiality": 0,
        "created": created_utc, "created_utc": created_utc, "distinguished": None, "downs": 0, "edited": False,
        "gilded": 0, "id": comment_id, "likes": None, "link_author": post["author"], "link_id": post["name"],
        "link_permalink": f"https://www.reddit.com{post['permalink']}", "link_title": post["title"],
        "link_url": post["url"], "mod_reports": [], "name": f"t1_{comment_id}", "num_reports": None,
        "over_18": False, "parent_id": parent_id, "permalink": f"{post['permalink']}{comment_id}/",
        "quarantine": False, "removal_reason": None, "replies": "", "report_reasons": None, "saved": False,
        "score": score, "score_hidden": False, "stickied": False, "subreddit": post["subreddit"],
        "subreddit_id": post["subreddit_id"], "subreddit_name_prefixed": post["subreddit_name_prefixed"], "ups": score,
        "user_reports": [],
    }


def created_at(when: When, now: float) -> float:
    """A ``When`` as Reddit's ``created_utc`` (whole seconds), never after ``now``."""
    if isinstance(when, tuple):
        days_ago, clock = when
        hour, minute = (int(part) for part in clock.split(":"))
        day = datetime.fromtimestamp(now, SITE_TZ).date() - timedelta(days=days_ago)
        moment = datetime.combine(day, dt_time(hour, minute), tzinfo=SITE_TZ).timestamp()
    else:
        moment = now - when * 3600
    return float(int(min(moment, now)))


def build_demo_things(now: float | None = None) -> list[dict[str, Any]]:
    """All demo posts and comments as Reddit things (``{"kind": "t3", "data": {...}}``), oldest ids first."""
    now = time.time() if now is None else now
    posts: dict[str, dict[str, Any]] = {}
    things: list[dict[str, Any]] = []
    for i, (key, subreddit, author, when, score, title, body) in enumerate(POSTS):
        is_link = body.startswith("https://")
        data = submission_data(
            post_id=base36(_POST_ID_BASE + i * 37), subreddit=subreddit, author=author,
            created_utc=created_at(when, now), title=title,
            selftext="" if is_link else body, link_url=body if is_link else None, score=score,
        )
        posts[key] = data
        things.append({"kind": "t3", "data": data})

    comments: dict[str, dict[str, Any]] = {}
    for i, (key, parent_key, author, when, score, body) in enumerate(COMMENTS):
        parent = posts.get(parent_key) or comments[parent_key]
        post = posts[parent_key] if parent_key in posts else _post_of(parent, posts)
        data = comment_data(
            comment_id=base36(_COMMENT_ID_BASE + i * 13), post=post, parent_id=parent["name"], author=author,
            created_utc=max(created_at(when, now), parent["created_utc"]), body=body, score=score,
        )
        post["num_comments"] += 1
        comments[key] = data
        things.append({"kind": "t1", "data": data})
    return things


def _post_of(comment: dict[str, Any], posts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return next(p for p in posts.values() if p["name"] == comment["link_id"])
