"""Shifts: when did the experience behind a mention happen, and which shift was on.

``estimate`` turns a mention into an incident-time window (platform visit date,
time expressions in the text, or post time minus a lag), ``attribute`` shares
that window between shift occurrences by overlap, ``report`` and ``incidents``
summarise, ``stage`` ties them to the database.
"""
