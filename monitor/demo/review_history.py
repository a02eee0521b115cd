"""The weeks before: ordinary days at both Acme locations, and the competitor, Bean Street Coffee.

About one complaint a day across the brand, so the trends have a normal to measure yesterday's
spike against, and the shifts page's 30-day view has history. The airport's older widget rated
out of 10 (``best`` = 10). Bean Street Coffee is not one of our locations: its reviews carry its
own brand (its own source in the demo config) and give the trends a competitor's line.
Entries as in ``review_week``: (id, location, author, stars, days ago, local time posted, title, body).
"""

from __future__ import annotations

from typing import Any

from monitor.demo.review_week import Entry, review

DOWNTOWN: list[Entry] = [
    ("h301", "downtown", "Tom R.", 5, 20, "09:10", "New favourite",
     "Just moved to the area and this is already my morning stop. Great flat white, friendly faces."),
    ("h302", "downtown", "Lily", 4, 19, "20:15", "Nice after-dinner decaf",
     "Popped in after dinner for a decaf and a slice of carrot cake. Both good."),
    ("h303", "downtown", "Harold", 2, 18, "12:20", "Stale sandwich",
     "The ham sandwich had clearly been sitting there since the day before. Coffee was fine."),
    ("h304", "downtown", "Nadia", 5, 17, "20:05", "Cozy evenings",
     "Lovely place to read in the evening, and the barista recommended a great decaf."),
    ("h305", "downtown", "Pete", 4, 16, "08:40", "Good coffee",
     "Good coffee, quick service. The breakfast burrito is underrated."),
    ("h306", "downtown", "Zoe", 2, 15, "21:30", "Closed early",
     "The sign says open till 10, but at 9:15 they had already stacked the chairs and refused to make drinks."),
    ("h307", "downtown", "Ravi", 5, 14, "10:15", "Great service",
     "Asked for something fruity and Jess made me a pour-over I'd never have picked. Loved it."),
    ("h308", "downtown", "Emma J.", 4, 13, "18:45", "Good hot chocolate", "Rich hot chocolate, real whipped cream."),
    ("h309", "downtown", "Gwen", 5, 12, "09:30", "My daily stop",
     "Same order every day and they never get it wrong. Thank you, morning team."),
    ("h310", "downtown", "Jamal", 1, 12, "20:40", "Wrong order and an eye-roll",
     "Got a caramel latte instead of a mocha, and an eye-roll when I pointed it out."),
    ("h311", "downtown", "Ingrid", 5, 11, "17:50", "Great first visit",
     "Lovely staff, great espresso, and they let my dog in."),
    ("h312", "downtown", "Yusuf", 4, 11, "11:45", "Good brunch", "Shakshuka was tasty and the coffee strong."),
    ("h313", "downtown", "Clara", 4, 10, "19:10", "Nice and calm", "Calm, clean, good tea selection."),
    ("h314", "downtown", "Henry", 5, 10, "08:25", "Fast and friendly",
     "Fast, friendly, and the oat latte was spot on."),
]

# Out of 10, like the airport's classic reviews.
AIRPORT: list[Entry] = [
    ("a401", "airport", "Sven", 8, 19, "07:50", "Good before a flight", "Decent espresso, quick line, seats free."),
    ("a402", "airport", "Karen", 3, 17, "15:30", "Painfully slow line",
     "One person working the register with a line of fifteen. Nearly missed boarding."),
    ("a403", "airport", "Tobias", 9, 16, "10:10", "Nice surprise",
     "Didn't expect good coffee in a terminal. Proper crema, friendly cashier."),
    ("a404", "airport", "Mira", 7, 14, "20:20", "Fine", "Okay latte, pricey muffin, clean tables."),
    ("a405", "airport", "Bill", 5, 13, "07:40", "Average", "Coffee was average and the bagel was cold."),
    ("a406", "airport", "Donna W.", 1, 12, "13:00", "Cold sandwich, $14",
     "Fourteen dollars for a sandwich that was still cold in the middle. They wouldn't heat it."),
    ("a407", "airport", "Ken", 10, 11, "05:30", "Red-eye saviour",
     "Landed on the red-eye and they were open with fresh coffee. Lovely overnight staff."),
    ("a408", "airport", "Paula", 7, 10, "18:00", "Good enough", "Good enough for an airport, quick service."),
    ("a409", "airport", "Noah", 9, 6, "12:10", "Great cold brew", "Cold brew was excellent. Staff were upbeat."),
    ("a410", "airport", "Greta", 3, 5, "19:45", "Rude and slow",
     "Waited fifteen minutes and the cashier snapped at me for asking how much longer."),
    ("a411", "airport", "Hugo", 8, 3, "09:15", "Reliable", "Always quick, good flat white."),
    ("a412", "airport", "Ines", 8, 2, "16:40", "Nice team", "Friendly team and a decent chai latte."),
]

BEAN_STREET: list[Entry] = [
    ("b501", "bean-street", "Alex", 5, 14, "09:20", "Great roast",
     "Their house roast is excellent and the baristas really know their stuff."),
    ("b502", "bean-street", "Jo", 4, 13, "13:40", "Nice lunch", "Good soup and a solid cappuccino."),
    ("b503", "bean-street", "Ranjit", 2, 12, "18:20", "Slow service",
     "Twenty minutes for two lattes on a quiet evening. Not great."),
    ("b504", "bean-street", "Maya", 5, 11, "08:45", "Best pastries", "Their cardamom buns are the best in town."),
    ("b505", "bean-street", "Felix", 4, 10, "11:10", "Good coffee", "Good coffee, a bit pricey."),
    ("b506", "bean-street", "Quinn", 5, 9, "16:30", "Lovely spot", "Big windows, plants everywhere, great flat white."),
    ("b507", "bean-street", "Sara", 3, 8, "10:05", "Okay", "Fine coffee, but the music was too loud to talk."),
    ("b508", "bean-street", "Leon", 5, 7, "09:50", "Friendly", "Friendly staff who remember your name."),
    ("b509", "bean-street", "Kim", 1, 6, "19:30", "Overcharged",
     "Charged for a large when I asked for a small, and they argued about it."),
    ("b510", "bean-street", "Dev", 4, 5, "12:25", "Solid", "Solid espresso and quick service."),
    ("b511", "bean-street", "Ana", 5, 4, "08:15", "Morning ritual", "My morning ritual. Never disappoints."),
    ("b512", "bean-street", "Max", 4, 3, "17:40", "Good decaf", "Good decaf, comfy chairs."),
    ("b513", "bean-street", "Ola", 2, 2, "14:10", "Dirty tables", "Every table was sticky and the bins overflowing."),
    ("b514", "bean-street", "Eve", 5, 2, "09:35", "Great beans", "Bought a bag of their Ethiopian beans, superb."),
    ("b515", "bean-street", "Ray", 4, 1, "11:50", "Nice", "Nice place for a quick coffee."),
    ("b516", "bean-street", "Ivy L.", 5, 1, "18:10", "Great evening staff",
     "Came in after a long day. Quick, friendly, and a great espresso."),
]

HISTORY_REVIEWS: list[dict[str, Any]] = (
    [review(e) for e in DOWNTOWN] + [review(e, best=10) for e in AIRPORT] + [review(e) for e in BEAN_STREET]
)
