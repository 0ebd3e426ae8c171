"""duban (督办): keeps party-building work in government agencies on schedule, by chat."""

__version__ = "0.1.0"
