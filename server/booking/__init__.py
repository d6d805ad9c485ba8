"""Appointments: residents book a slot online or by phone, then check in at the kiosk.

Plain models, no web code (docs/booking.md):

* ``plan.py`` — which slots a service offers on a day (its hours, its booking plan,
  public holidays and the office's closures) and how many residents each takes;
* ``codes.py`` — booking codes that can be read over the phone, and their normalisation;
* ``contact.py`` — the only personal data kept: a name and a phone number or e-mail address;
* ``store.py`` — the ``bookings`` table: no double booking (a unique seat per slot, written
  in one ``BEGIN IMMEDIATE`` transaction), limits per contact, erasure after the visit;
* ``desk.py`` — the façade the booking pages and the reception use.
"""
