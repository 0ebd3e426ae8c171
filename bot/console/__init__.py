"""The local console: a platform that lives in a browser tab on this machine (GET /console).

adapter.py turns what the page posts into an Inbound; sender.py delivers the bot's messages to
the feed; roster.py holds the people both know by id, name and account; feed.py keeps the
recent events and streams them to open pages; directory.py makes the page's list of people,
units and groups on its first request; routes.py serves the page, the directory and the
stream, to loopback peers only.
"""

from bot.console.adapter import ConsoleWebhook, showing_inbound, showing_inbound_many
from bot.console.feed import ConsoleEvent, ConsoleFeed
from bot.console.routes import add_console_routes
from bot.console.sender import ConsoleSender

__all__ = [
    "ConsoleEvent",
    "ConsoleFeed",
    "ConsoleSender",
    "ConsoleWebhook",
    "add_console_routes",
    "showing_inbound",
    "showing_inbound_many",
]
