"""Notifications: SMS and e-mail to residents, through a durable outbox.

Why a package of its own: the server decides *what* to tell whom (it writes a notice in the
same transaction as the event that causes it); this package knows *how* to get it to a
phone or a mailbox — gateways, phone numbers, SMS text rules, templates, and the outbox's
state machine over SQLite. It imports nothing from server/, so it can be tested and
measured with the real daemons alone, and the server (or a separate worker) drives it.
"""
