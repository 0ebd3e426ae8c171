"""When jobs run: admins' schedule expressions (Chinese or cron), fire times on the working-day
calendar, and the APScheduler trigger that follows them."""

from bot.schedules.parse import ScheduleError, parse_schedule
from bot.schedules.spec import ScheduleSpec
from bot.schedules.trigger import ScheduleTrigger

__all__ = ["ScheduleError", "ScheduleSpec", "ScheduleTrigger", "parse_schedule"]
