"""Hand-written reviews for the demo site: "Acme Coffee" (two locations) and a competitor, "Bean Street Coffee".

Dates are relative (``days_ago`` and a local time ``at``, or ``hours_ago``) so the demo always
looks fresh; :func:`dated_reviews` turns them into real timestamps. Ratings use
``best`` = 5 or 10 (the airport's older review widget used a 10-point scale).

These are the site's classic reviews; ``review_week`` and ``review_history`` add the weeks of
volume that make the demo's story (docs in ``review_week``): a flagged evening shift downtown,
an incident yesterday evening, a complaint spike that day, and a recovery after a reply.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

BUSINESS = "Acme Coffee"
# The demo city's zone, the same one the demo config gives both locations and the digest: "yesterday"
# in the content is the digest's yesterday, on any day of the year (DST included).
SITE_TZ = ZoneInfo("America/New_York")

LOCATIONS: dict[str, dict[str, str]] = {
    "downtown": {
        "name": "Acme Coffee Downtown",
        "street": "120 Market Street",
        "locality": "Springfield",
        "phone": "+1-555-0100",
    },
    "airport": {
        "name": "Acme Coffee Airport (Terminal B)",
        "street": "Terminal B, Gate 14",
        "locality": "Springfield",
        "phone": "+1-555-0199",
    },
    # Not ours: the competitor the demo's trends compare Acme with (its own source, its own brand).
    "bean-street": {
        "name": "Bean Street Coffee",
        "street": "8 Bean Street",
        "locality": "Springfield",
        "phone": "+1-555-0142",
    },
}

REVIEWS: list[dict[str, Any]] = [
    {
        "id": "r101",
        "location": "downtown",
        "author": "Maria G.",
        "rating": 1,
        "best": 5,
        "days_ago": 1,
        "at": "08:40",
        "title": "Waited 25 minutes for a latte",
        "body": "Last night around 10pm there was one barista for a line of twelve people. I waited 25 minutes "
        "for a latte and it came out lukewarm. Nobody apologised.",
    },
    {
        "id": "r102",
        "location": "downtown",
        "author": "Tom Becker",
        "rating": 5,
        "best": 5,
        "days_ago": 1,
        "at": "12:15",
        "title": "Best flat white in town",
        "body": "This morning at 8 Jess remembered my order from last week and had it ready before I paid. "
        "Great coffee, warm welcome, spotless counter.",
    },
    {
        "id": "r103",
        "location": "airport",
        "author": "Kenji",
        "rating": 2,
        "best": 10,
        "days_ago": 1,
        "at": "06:05",
        "title": "Rude at 5am",
        "body": 'The cashier rolled his eyes when I asked if they had oat milk and told me to "read the board". '
        "I get that it's early, but that was uncalled for.",
    },
    {
        "id": "r104",
        "location": "downtown",
        "author": "王芳",
        "rating": 1,
        "best": 5,
        "days_ago": 1,
        "at": "09:30",
        "title": "很失望",
        "body": "昨晚的咖啡太难喝了，服务员态度很差",
    },
    {
        "id": "r105",
        "location": "airport",
        "author": "Priya S.",
        "rating": 3,
        "best": 5,
        "days_ago": 2,
        "at": "14:50",
        "title": "Fine for an airport",
        "body": "Coffee was okay, the croissant was a bit stale. Prices are airport prices. Staff were quick "
        "though, I made my flight.",
    },
    {
        "id": "r106",
        "location": "downtown",
        "author": "Dave O'Connor",
        "rating": 2,
        "best": 5,
        "days_ago": 3,
        "at": "20:10",
        "title": "Charged twice",
        "body": "My card was charged twice for one bagel and a tea. The manager said to call the bank. "
        "Still waiting for someone to sort it out.",
    },
    {
        "id": "r107",
        "location": "airport",
        "author": "Lena",
        "rating": 9,
        "best": 10,
        "days_ago": 3,
        "at": "07:20",
        "title": "Saved my morning",
        "body": "Flight delayed, I was grumpy, and the barista drew a little plane on my cappuccino. "
        "Genuinely made my day. Fast service at 7am too.",
    },
    {
        "id": "r108",
        "location": "downtown",
        "author": "Chris P.",
        "rating": 2,
        "best": 5,
        "days_ago": 3,
        "at": "13:05",
        "title": "Dirty tables at lunch",
        "body": "Yesterday at lunch every table was sticky and the bin by the door was overflowing. "
        "Coffee was fine, but I took it to go.",
    },
    {
        "id": "r109",
        "location": "downtown",
        "author": "Ana Lucia",
        "rating": 4,
        "best": 5,
        "days_ago": 3,
        "at": "17:45",
        "title": "Good, a bit loud",
        "body": "Nice cortado and the new almond pastry is excellent. Music was too loud to work, though.",
    },
    {
        "id": "r110",
        "location": "airport",
        "author": "Mike R.",
        "rating": 1,
        "best": 5,
        "days_ago": 4,
        "at": "22:30",
        "title": "Cold food, no refund",
        "body": "Ordered a hot panini around 9pm, got it cold in the middle. Asked for a new one and was told "
        "the kitchen was closed. Not coming back.",
    },
    {
        "id": "r111",
        "location": "downtown",
        "author": "Sofia",
        "rating": 5,
        "best": 5,
        "days_ago": 4,
        "at": "12:40",
        "title": "Lovely staff",
        "body": "Brunch was busy but the team stayed cheerful. Shout-out to Marcus for fixing my order "
        "without any fuss. I <3 the cinnamon buns.",
    },
    {
        "id": "r112",
        "location": "airport",
        "author": "张伟",
        "rating": 6,
        "best": 10,
        "days_ago": 4,
        "at": "16:20",
        "title": "一般",
        "body": "今天下午的拿铁还可以，就是排队时间太长了，等了二十分钟。",
    },
    {
        "id": "r113",
        "location": "downtown",
        "author": "Grace H.",
        "rating": 3,
        "best": 5,
        "days_ago": 5,
        "at": "08:10",
        "title": "Hit and miss",
        "body": "Some days it's perfect, some days the milk is burnt. This morning around 7:30 it was the "
        "burnt kind. The app order was ready on time at least.",
    },
    {
        "id": "r114",
        "location": "downtown",
        "author": "Omar",
        "rating": 1,
        "best": 5,
        "days_ago": 5,
        "at": "21:40",
        "title": "Mobile order never arrived",
        "body": "Paid in the app at 6pm, the order never showed up on their screen. Staff said it's an app "
        "problem and I should email support. Nobody answered the email.",
    },
    {
        "id": "r115",
        "location": "airport",
        "author": "Helen T.",
        "rating": 10,
        "best": 10,
        "days_ago": 5,
        "at": "11:35",
        "title": "Best airport coffee",
        "body": "Proper espresso, friendly people, clean seating area. I always stop here before flying out.",
    },
    {
        "id": "r116",
        "location": "airport",
        "author": "Jordan",
        "rating": 2,
        "best": 5,
        "days_ago": 6,
        "at": "05:50",
        "title": "Closed when it should be open",
        "body": "Sign says open from 5am. At 5:20 the shutters were still down and two staff were chatting "
        "inside. Missed my chance for coffee before boarding.",
    },
    {
        "id": "r117",
        "location": "downtown",
        "author": "Beth W.",
        "rating": 4,
        "best": 5,
        "days_ago": 6,
        "at": "17:30",
        "title": "Solid neighbourhood spot",
        "body": "Good coffee, fair prices, and they let me sit for two hours with my laptop. Wifi drops now and then.",
    },
    {
        "id": "r118",
        "location": "downtown",
        "author": "Raj",
        "rating": 2,
        "best": 5,
        "days_ago": 7,
        "at": "09:05",
        "title": "Wrong order again",
        "body": "Third time this month they gave me whole milk instead of oat. I'm lactose intolerant, "
        "this is not a small thing. Please label the cups properly.",
    },
    {
        "id": "r119",
        "location": "airport",
        "author": "Chloe",
        "rating": 7,
        "best": 10,
        "days_ago": 7,
        "at": "18:25",
        "title": "Decent, pricey",
        "body": "Tasty mocha, but $7.50 for a medium is a lot even for an airport.",
    },
    {
        "id": "r120",
        "location": "downtown",
        "author": "Li Na",
        "rating": 5,
        "best": 5,
        "days_ago": 8,
        "at": "08:55",
        "title": "早上的咖啡很好",
        "body": "今天早上八点来买咖啡，店员很热情，咖啡也很香。推荐！",
    },
    {
        "id": "r121",
        "location": "airport",
        "author": "Frank M.",
        "rating": 1,
        "best": 5,
        "days_ago": 8,
        "at": "23:10",
        "title": "Staff arguing behind the counter",
        "body": "Late evening, two employees were arguing loudly while customers waited. When I asked for a "
        "receipt I was told the printer 'doesn't do receipts'.",
    },
    {
        "id": "r122",
        "location": "downtown",
        "author": "Nina & Paul",
        "rating": 3,
        "best": 5,
        "days_ago": 9,
        "at": "19:30",
        "title": "Okay evening visit",
        "body": "Came in after dinner. Decaf was fine, the tables by the window still had crumbs & coffee "
        "rings on them. Friendly enough staff.",
    },
    {
        "id": "r123",
        "location": "downtown",
        "author": "Samuel",
        "rating": 5,
        "best": 5,
        "days_ago": 9,
        "at": "08:45",
        "title": "Quick and friendly",
        "body": "In and out in three minutes at rush hour. Whoever trained the morning shift did a great job.",
    },
    {
        "id": "r124",
        "location": "airport",
        "author": "Ivy",
        "rating": 4,
        "best": 10,
        "days_ago": 9,
        "at": "13:40",
        "title": "Overcharged",
        "body": "Was charged for a large when I ordered a small. The cashier fixed it but acted like I was "
        "being difficult.",
    },
]


def all_reviews() -> list[dict[str, Any]]:
    """Every review the demo site holds: the classic ones, the last week downtown, the weeks before."""
    # Imported here: those modules build on this one's conventions, and the site only needs them when dating.
    from monitor.demo.review_history import HISTORY_REVIEWS
    from monitor.demo.review_week import WEEK_REVIEWS

    return [*REVIEWS, *WEEK_REVIEWS, *HISTORY_REVIEWS]


def dated_reviews(now: datetime | None = None, follow_ups: bool = False) -> list[dict[str, Any]]:
    """The reviews with ``published`` set to a real, aware datetime relative to ``now``; newest first.

    ``follow_ups``: show the edits customers made after our reply (a review's ``follow_up``), as the
    site does once the demo has answered them; they carry ``modified`` (``now``).
    """
    now = (now or datetime.now(SITE_TZ)).astimezone(SITE_TZ)
    out = []
    for review in all_reviews():
        if "hours_ago" in review:
            published = (now - timedelta(hours=review["hours_ago"])).replace(second=0, microsecond=0)
        else:
            hour, minute = (int(part) for part in review["at"].split(":"))
            day = now - timedelta(days=review["days_ago"])
            published = min(day.replace(hour=hour, minute=minute, second=0, microsecond=0), now)
        edit = review.get("follow_up") if follow_ups else None
        out.append({**review, **(edit or {}), "published": published, "modified": now if edit else None})
    return sorted(out, key=lambda review: review["published"], reverse=True)
