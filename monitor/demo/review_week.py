"""The demo's last week at Acme Coffee Downtown: the story the shifts, incidents, trends and recovery show.

* **A flagged shift.** The morning crew (Jess, Marcus, Maria) gets mostly praise; the evening
  crew (Kyle, Brianna; see ``roster.py``) gets about one complaint in two: ignored customers,
  burnt drinks, a floor nobody cleans. Over the week that stands out in the flag test.
* **An incident.** Yesterday, a little before 5 pm, the espresso machine broke and the evening
  crew kept taking orders without a word: eight complaints (in English, Spanish and Chinese) within two hours,
  plus the Reddit thread in ``reddit_content``, naming the same evening.
* **A spike.** Those complaints make yesterday the brand's worst day by far.
* **A recovery.** ``w270`` (a forgotten cake order, posted a few hours before the demo runs) is
  answered by the demo through ``mark_replied``; the customer then edits the review up to four
  stars (``follow_up``), which the next crawl stores as a revision and the queue as a recovery.

Each entry: (id, location, author, stars out of 5, days ago, local time posted, title, body).
Times matter: a review's incident time comes from its text ("around 6pm", "this morning") or, when
the text says nothing, from the two hours before it was posted, so posting times keep each review
inside the shift it is about.
"""

from __future__ import annotations

from typing import Any

Entry = tuple[str, str, str, int, int, str, str, str]

MORNING: list[Entry] = [
    ("w201", "downtown", "Ellie R.", 5, 6, "08:20", "Morning regular",
     "Jess had my usual cortado going before I reached the till. Fastest coffee stop on my commute."),
    ("w202", "downtown", "Marco", 4, 6, "11:05", "Good brunch spot",
     "Eggs on sourdough were great and the flat white was strong. A little cramped at the window tables."),
    ("w203", "downtown", "Patrick D.", 2, 6, "09:40", "Out of oat milk, again",
     "Second week in a row they ran out of oat milk before nine. If it's that popular, order more of it."),
    ("w204", "downtown", "Hannah Liu", 5, 5, "08:35", "Friendly and fast",
     "Queue was long but it moved fast. Marcus was joking with everyone and the cinnamon bun was still warm."),
    ("w205", "downtown", "Gregory", 4, 5, "10:50", "Reliable",
     "Consistent espresso, clean tables, decent wifi. My default work spot for the first hour of the day."),
    ("w206", "downtown", "Ayesha", 5, 5, "13:10", "Perfect lunch stop",
     "Tomato soup and an iced latte for under twelve dollars. Quick, friendly, spotless."),
    ("w207", "downtown", "Jonas Weber", 5, 4, "08:15", "Bester Kaffee der Stadt",
     "Der Flat White war perfekt und das Team am Morgen ist unglaublich freundlich. Komme gerne wieder."),
    ("w208", "downtown", "Tara", 4, 4, "09:55", "Nice morning crew",
     "Maria sorted out my order without any fuss when the app sent it to the wrong store. Coffee was good."),
    ("w209", "downtown", "Lucas P.", 5, 4, "11:30", "Great pastries",
     "The almond croissant is the best in Springfield. Grabbed the last one and a very good cappuccino."),
    ("w210", "downtown", "Victor", 2, 2, "08:50", "Slow mobile order",
     "The app said my order would be ready in 5 minutes; it took 20. The staff were nice about it but I was late "
     "for a meeting."),
    ("w211", "downtown", "Nora", 5, 3, "10:20", "Lovely place to start the day",
     "Sunlight, music at a sensible volume, and a barista who knows her beans. Jess recommended a Kenyan "
     "pour-over and it was excellent."),
    ("w212", "downtown", "Sam T.", 4, 3, "12:45", "Good value",
     "The lunch combo is good value. Tables were clean and the staff kept the line moving."),
    ("w213", "downtown", "Beatriz", 5, 2, "08:30", "Café excelente",
     "Café excelente y el personal de la mañana muy amable. Volveré sin duda."),
    ("w214", "downtown", "Owen", 5, 2, "09:45", "Ten out of ten",
     "Ordered for six people from the office, every drink right, done in under ten minutes. Thank you Marcus!"),
    ("w215", "downtown", "Ruth", 4, 2, "11:55", "Quiet late morning",
     "Quiet and calm, comfy chairs, good chai. Only wish they had more plugs."),
    ("w216", "downtown", "Kwame", 5, 2, "13:30", "Great sandwich",
     "Turkey and avocado on rye, fresh and generous. The team was cheerful even in the lunch rush."),
    ("w217", "downtown", "Isabel", 5, 1, "08:10", "Morning magic",
     "Maria had my oat cappuccino ready before I'd finished saying hello. This morning crew is the reason I "
     "come here."),
    ("w218", "downtown", "Ben Carter", 4, 1, "09:20", "Solid as always",
     "Good coffee, short wait, spotless counter. Exactly what you want on a weekday."),
    ("w219", "downtown", "Mei", 5, 1, "11:40", "咖啡很好喝", "今天上午的拿铁很好喝，店员也很有礼貌。"),
    ("w220", "downtown", "Derek", 5, 1, "13:15", "Best lunch break",
     "Grabbed a sandwich and a cold brew between meetings. In and out in four minutes, everyone smiling."),
]

EVENING: list[Entry] = [
    ("w231", "downtown", "Alicia M.", 1, 6, "20:45", "Ignored at the counter",
     "Stood at the counter for ten minutes while the two guys on the evening shift finished their conversation. "
     "When I finally ordered, my latte was lukewarm."),
    ("w232", "downtown", "Tom W.", 2, 4, "19:40", "Evenings are a different place",
     "Mornings here are great, but tonight the floor was sticky, the bins were overflowing and the music was "
     "blasting. Feels like nobody is in charge after the day crew leaves."),
    ("w233", "downtown", "Jenna", 1, 3, "21:15", "Rude when I asked for a remake",
     "My mocha tasted burnt. When I asked for a remake around 8, Kyle said 'that's how it comes' and walked off."),
    ("w234", "downtown", "Marisol", 2, 5, "08:55", "Burnt milk, dirty cups",
     "Last night around 7 the milk for my flat white was burnt and used cups were stacked on the counter. "
     "The evening staff didn't seem to care."),
    ("w235", "downtown", "Josh K.", 1, 4, "07:50", "Waited, then ignored",
     "Yesterday evening I waited fifteen minutes while the guy on the till scrolled his phone. Left without "
     "ordering."),
    ("w236", "downtown", "Priscilla", 2, 2, "16:30", "Wrong drink, no apology",
     "Asked for a decaf, got a full-strength latte and a shrug when I said so. Service here has really gone "
     "downhill."),
    ("w241", "downtown", "Priyanka", 4, 6, "18:10", "Good study spot",
     "Came after class, got a big table and a chai. A bit noisy but fine."),
    ("w242", "downtown", "Frank O.", 5, 5, "16:40", "Great decaf",
     "Finally a place that takes decaf seriously. Smooth, not bitter. I'll be back."),
    ("w243", "downtown", "Chen Jie", 4, 5, "19:20", "Nice evening",
     "Quiet evening, good hot chocolate, friendly enough."),
    ("w244", "downtown", "Laura B.", 4, 4, "17:05", "Nice pastries",
     "The last lemon tart of the day was still great. Service was a bit slow but friendly."),
    ("w245", "downtown", "Dmitri K.", 5, 3, "18:30", "Good vibes",
     "Met a friend here after work: great cold brew and a record playing. Relaxed place."),
    ("w246", "downtown", "Rosa", 4, 3, "20:10", "Late coffee fix",
     "Just what I needed before a night of studying. Americano was strong and hot."),
    ("w247", "downtown", "Will", 5, 2, "16:15", "Great iced latte",
     "Hot day, perfect iced latte, and they refilled the water jug without being asked."),
    ("w248", "downtown", "Anya", 4, 2, "18:55", "Decent",
     "Cozy spot, decent flat white, would come back."),
    ("w249", "downtown", "Oliver", 5, 1, "16:20", "Quick coffee, no queue",
     "Popped in after a meeting: no queue, good espresso and a seat by the window."),
    ("w250", "downtown", "Gabe", 4, 1, "21:40", "Machine working again",
     "By the time I came in the espresso machine was working again. Good latte; the staff looked exhausted."),
]

# Yesterday evening's incident: the espresso machine broke a little before 5 pm.
INCIDENT: list[Entry] = [
    ("w261", "downtown", "Megan O.", 1, 1, "18:05", "45 minutes, no latte",
     "Ordered at about 5pm. Forty-five minutes later they told me the espresso machine was broken and offered "
     "a drip coffee. No refund, no apology."),
    ("w262", "downtown", "Carlos", 2, 1, "18:40", "Espresso machine down, nobody told us",
     "Got there at 5:15, paid for two cappuccinos, and only then found out the espresso machine was down. Half "
     "an hour later we left with two filter coffees."),
    ("w263", "downtown", "Hollie", 1, 1, "19:20", "Chaos at the Market Street store",
     "Around 6pm there were twenty people waiting, the espresso machine was broken and the two on the evening "
     "shift were arguing about whose fault it was. I asked for my money back and Kyle said refunds "
     "'aren't his job'."),
    ("w264", "downtown", "Andre", 1, 1, "21:10", "Cold brew only, full price",
     "Came in at 5:30 after work. Espresso machine out of action, so cold brew only - at full latte prices. "
     "Nobody put up a sign or warned the line."),
    ("w265", "downtown", "Sophie L.", 2, 1, "22:45", "Broken machine, no sign",
     "Tonight around 6:30 the espresso machine was still broken and the staff kept taking orders anyway. "
     "I left after 20 minutes with nothing."),
    ("w266", "downtown", "Lucía", 1, 1, "20:30", "Máquina rota y sin aviso",
     "La máquina de espresso estaba rota y nadie avisó. Esperamos casi una hora y al final nos dieron café de "
     "filtro. Muy mal servicio."),
    ("w267", "downtown", "刘洋", 1, 1, "19:50", "咖啡机坏了",
     "今天下午五点半去的，咖啡机坏了，排了半个小时才告诉我们只有滴滤咖啡。店员一句道歉都没有。"),
    ("w268", "downtown", "Rachel", 2, 1, "23:10", "Should have put up a sign",
     "Around 5:45 tonight the espresso machine was broken and they were still selling lattes they couldn't make. "
     "We waited 25 minutes before anyone said anything."),
]

# The complaint the demo answers; ``follow_up`` is the customer's edit after the reply.
RECOVERY_ID = "w270"
RECOVERY_REPLY = (
    "Megan, I'm so sorry - your order was taken but never passed to the kitchen. Your cake is ready at the "
    "downtown counter today, on the house. Ask for Dana. - Dana, store manager"
)
RECOVERY: dict[str, Any] = {
    "id": RECOVERY_ID,
    "location": "downtown",
    "author": "Megan K.",
    "rating": 2,
    "best": 5,
    "hours_ago": 3,
    "title": "Forgot my cake order",
    "body": "Pre-ordered a birthday cake for pickup a week ago. When I came to collect it they had no record of "
    "the order and no cake. The staff shrugged. The party is tomorrow.",
    "follow_up": {
        "rating": 4,
        "title": "Forgot my cake order - then sorted it quickly",
        "body": "Update: Dana, the manager, got back to me within a couple of hours, apologised, and had the cake "
        "ready the same day, on the house. Really well handled - thank you!\n\nOriginal review: I pre-ordered a "
        "birthday cake for pickup and when I came to collect it they had no record of the order.",
    },
}


def review(entry: Entry, best: int = 5) -> dict[str, Any]:
    """A compact entry as the dict ``review_content.dated_reviews`` dates."""
    ident, location, author, stars, days_ago, at, title, body = entry
    return {"id": ident, "location": location, "author": author, "rating": stars, "best": best,
            "days_ago": days_ago, "at": at, "title": title, "body": body}  # fmt: skip


WEEK_REVIEWS: list[dict[str, Any]] = [review(e) for e in (*MORNING, *EVENING, *INCIDENT)] + [RECOVERY]
