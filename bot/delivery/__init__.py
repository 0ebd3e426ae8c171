"""Reliable delivery of the outbox: the worker, the robots' rate limits, coalescing,
retries and alerts, and the queue report admins ask for."""

from bot.delivery.outcomes import Backoff
from bot.delivery.status import QueueStatus, queue_status, retry_dead
from bot.delivery.worker import DeliveryWorker

__all__ = ["Backoff", "DeliveryWorker", "QueueStatus", "queue_status", "retry_dead"]
