"""Process settings, read from DUBAN_* environment variables (documented in README)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Templates and the sample configuration live beside the packages in a checkout, and in the
# working directory of an installed deployment (the Docker image's /app).
_CHECKOUT = Path(__file__).resolve().parent.parent
PROJECT_ROOT = _CHECKOUT if (_CHECKOUT / "templates").is_dir() else Path.cwd()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUBAN_", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite+aiosqlite:///{PROJECT_ROOT / 'data' / 'duban.db'}"
    )
    config: Path = PROJECT_ROOT / "config" / "sample"
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    # "console" keeps every outgoing message on the local console instead of the platforms:
    # the quick start, and a dry run of a real configuration before going live.
    delivery: Literal["platform", "console"] = "platform"
    # Upgrade the schema on start; when off, `duban serve` refuses an outdated schema.
    auto_migrate: bool = True
    scheduler_enabled: bool = True
