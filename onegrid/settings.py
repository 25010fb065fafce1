"""Configuration from the environment (prefix ONEGRID_) or a .env file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFICIAL_TELEGRAM_API_URL = "https://api.telegram.org"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEGRID_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Local files: SQLite database, photos")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in DATA_DIR")
    bot_token: SecretStr | None = None
    redis_url: str | None = Field(default=None, description="Conversation state in Redis instead of the store")
    telegram_api_url: str = OFFICIAL_TELEGRAM_API_URL
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    default_locale: str = "zh_CN"
    timezone: str = "Asia/Shanghai"
    case_number_prefix: str = "SH"

    # Delivery limits (Telegram: ~30 messages/s per bot, 1/s per chat, 20/min per group).
    delivery_global_per_second: float = 29.8
    delivery_chat_interval_s: float = 1.02
    delivery_group_interval_s: float = 3.05
    delivery_max_attempts: int = 20
    delivery_poll_interval_s: float = 0.5

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'onegrid.sqlite3').resolve()}"

    @property
    def photo_dir(self) -> Path:
        return self.data_dir / "photos"
