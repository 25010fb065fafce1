"""Configuration from the environment (prefix ONEGRID_) or a .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFICIAL_TELEGRAM_API_URL = "https://api.telegram.org"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEGRID_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Local files: SQLite database, photos")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in DATA_DIR")
    bot_token: SecretStr | None = None
    redis_url: str | None = Field(default=None, description="Conversation state in Redis instead of the store")
    pace_redis_url: str | None = Field(
        default=None, description="Share the bot-wide send pace among processes through this Redis (default: redis_url)")
    telegram_api_url: str = OFFICIAL_TELEGRAM_API_URL
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    default_locale: str = "zh_CN"
    timezone: str = "Asia/Shanghai"
    case_number_prefix: str = "SH"
    # Logs (onegrid/logs.py): JSON lines when stderr is not a terminal, readable lines on one; "json"/"console" force either.
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # /metrics: with a token, scrapes must send `Authorization: Bearer <token>`; with a bind ("127.0.0.1:9464"),
    # /metrics is served only there (an internal address) and not on the API port.
    metrics_token: SecretStr | None = None
    metrics_bind: str | None = Field(default=None, pattern=r"^[\w.:\[\]-]+:\d{1,5}$")
    # Another process's grid import is picked up this often (one primary-key read when nothing changed).
    grid_map_refresh_s: float = Field(default=15.0, gt=0)
    # Keyed machine intake's group commit (api/intake_writer.py): after a big batch, the next waits up to
    # this long for as many requests, so a busy server writes few big batches instead of big and small ones.
    intake_gather_ms: float = Field(default=3.0, ge=0, le=100, description="Wait for a batch's siblings, ms")
    # Threads `onegrid serve` runs store work in (intake, the dispatcher). 0: 2 on SQLite, whose writers take
    # turns anyway (more threads only contend for the lock and the GIL), 4 on PostgreSQL (docs/BENCHMARKS.md).
    store_threads: int = Field(default=0, ge=0, le=64, description="Threads for store work; 0 chooses by store")

    # Delivery limits (Telegram: ~30 messages/s per bot, 1/s per chat, 20/min per group).
    # Bot-wide pace (bot/pace.py; through Redis across processes): slots evenly spaced at
    # `delivery_global_per_second`, and up to `delivery_burst` early while fewer than `delivery_window_count`
    # calls are counted in the last `delivery_window_s`, each until a window after its answer.
    delivery_global_per_second: float = 29.8
    delivery_window_count: int = Field(default=30, ge=1)
    delivery_window_s: float = Field(default=1.0, gt=0)
    delivery_burst: int = Field(default=10, ge=1)
    delivery_chat_interval_s: float = 1.05  # 50 ms above the 1 s limit: room for timing jitter
    delivery_group_interval_s: float = 3.05
    delivery_max_attempts: int = 20
    delivery_poll_interval_s: float = 0.5

    # --- Work orders (handlers/worker.py, handlers/supervisor.py, services/{dispatch,work,verification,invitations}.py).
    bot_username: str | None = Field(default=None, description="For invitation links; else asked from Telegram (getMe)")
    invitation_ttl_hours: int = 72  # a staff invitation link works once, until then
    dispatch_poll_interval_s: float = 5.0  # the dispatcher's fallback poll; it is woken after each registration
    # While registrations pour in, a dispatcher wake waits up to this long for the next registering commit,
    # so a batch offers more cases at once (services/dispatcher.py); after a small batch, or a second after
    # a big one, a case is dispatched at once.
    dispatch_gather_ms: float = Field(default=10.0, ge=0, le=1000, description="Wait for the next registrations, ms")
    dispatch_offer_limit: int = 3  # workers offered one task at once, least loaded first; the first Accept wins
    proof_max_photos: int = 3
    proof_location_max_age_s: int = 180  # a location proof must have been sent within this of the clock
    proof_location_max_accuracy_m: float = 100.0  # a fix vaguer than this proves nothing about being on site
    # Off duty with held orders kept (services/handover.py): they go back to dispatch after this many minutes.
    off_duty_grace_min: int = Field(default=30, ge=0, description="Minutes held orders stay with a worker off duty")
    # Camera snapshots of machine cases (services/snapshots.py): fetched once, only from these hosts
    # (comma-separated host names, or host:port); empty: never fetched, the links are shown instead.
    snapshot_hosts: str = Field(default="", description="Hosts camera snapshot links may be fetched from")
    snapshot_timeout_s: float = Field(default=5.0, gt=0, le=60, description="Time one snapshot fetch may take")
    snapshot_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, description="Largest snapshot fetched")

    # --- The case-store API (api/, services/{api_keys,idempotency,intake,upstream,telegram_webhook}.py).
    # Bodies larger than this are refused with 413 before they are read; area import has its own cap.
    api_max_body_bytes: int = 256 * 1024
    api_max_import_bytes: int = 32 * 1024 * 1024
    api_max_sync_batch_bytes: int = 16 * 1024 * 1024  # POST /api/v1/sync/events/batch: up to 1,000 whole events
    api_default_rate_per_minute: int = 600  # per API key unless the key says otherwise
    idempotency_ttl_hours: int = 24  # published in the OpenAPI description and the Idempotency-Expires header
    idempotency_lock_s: int = 60  # a request that died in flight stops blocking its key after this
    intake_fold_window_s: int = 3600  # default for categories without an intake rule
    intake_default_clear_rule: str = "verify"  # ignore | verify | close
    open311_jurisdiction_id: str | None = None  # when set, other jurisdiction_id values are refused (400)
    # GET requests without a key answer the public view (masked text, ~100 m coordinates); off: a key with
    # `read` is required (403), as for a city that keeps its Open311 closed.
    open311_public_reads: bool = True
    open311_default_window_days: int = 90  # GET requests without dates: the last 90 days
    open311_max_results: int = 1000
    # Telegram webhook mode: set both; startup refuses a webhook URL without a secret.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # The durable inbox (both modes): an update whose handling was cut off (a crash) is taken up again after this.
    inbox_lease_s: float = 120.0
    # Upstream platform of record: outbox relay and polling of its Open311 requests.json.
    instance_id: str = Field(default="onegrid", description="Names this OneGrid in event ids sent upstream")
    upstream_url: str | None = None
    upstream_api_key: SecretStr | None = None
    upstream_push_secret: SecretStr | None = None  # HMAC-SHA256 key of pushes from the upstream
    upstream_push_tolerance_s: int = 300  # signed pushes older or newer than this are refused
    upstream_poll: bool = False  # poll the upstream's requests.json by updated_datetime
    upstream_poll_interval_s: float = 60.0
    upstream_connect_timeout_s: float = 3.0
    upstream_read_timeout_s: float = 10.0
    upstream_max_attempts: int = 12  # then the event is a dead letter (`onegrid outbox dead-letters`)
    upstream_backoff_initial_s: float = 2.0
    upstream_backoff_max_s: float = 900.0
    upstream_batch: int = 4000  # at most this many outbox rows per claim (the relay claims what its free slots hold)
    upstream_batch_size: int = Field(default=200, ge=1, le=1000,
                                     description="Events per request to the upstream's batch endpoint; 1: one per request")
    upstream_concurrency: int = 8

    # Residents: reporting limits, the draft timeout, 回访 window, photo retention, flood shedding.
    report_limit_per_hour: int = Field(default=5, ge=1, description="Reports one resident may make per hour")
    report_description_max: int = Field(default=1000, ge=50, le=4000, description="Characters in a description")
    report_draft_timeout_minutes: int = Field(default=30, ge=1, description="An untouched report draft expires")
    feedback_reopen_days: int = Field(default=7, ge=0, description="Days after closure a resident may reopen")
    photo_original_retention_days: int = Field(default=0, ge=0, description="Keep photo originals (0: never)")
    # Finished cases (services/retention.py); 0 keeps that kind of data for ever.
    retention_precise_days: int = Field(default=180, ge=0, description="Then round case and proof points to ~100 m")
    retention_text_days: int = Field(default=365, ge=0, description="Then empty descriptions, addresses, comments")
    retention_photo_days: int = Field(default=365, ge=0, description="Then delete the case's photos and files")
    max_pending_updates_per_user: int = Field(default=10, ge=1, description="Updates queued per user before shedding")

    # --- Supervision (services/{working_time,escalation,extensions,kpi}.py, handlers/supervision.py).
    calendar_overrides_path: Path | None = Field(default=None, description="Working calendar overrides; default data/calendar_overrides.json")
    escalation_policy_path: Path | None = Field(default=None, description="Escalation ladder; default data/escalation_policy.json")
    escalation_sweep_interval_s: float = 5.0  # one scheduler job runs the sweep this often
    escalation_batch: int = 500  # cases claimed per sweep transaction
    escalation_group_batch: int = 10  # pings about several cases to one group go as one message of up to this many
    # Daily digest (services/digest.py): each supervisor gets a chart and the top overdue cases at this local time.
    digest_enabled: bool = True
    digest_time: str = Field(default="18:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Local time (HH:MM) of the daily digest")
    digest_days: int = Field(default=14, ge=2, le=60, description="Days the digest chart covers")
    # Spot checks of silent grids (services/spot_checks.py, 不定时抽查).
    spot_check_enabled: bool = True
    spot_check_sample: int = Field(default=3, ge=0, description="Silent grids checked per round")
    spot_check_silent_days: int = Field(default=7, ge=1, description="A grid is silent after this many days without cases")
    spot_check_answer_minutes: int = Field(default=30, ge=1, description="Minutes a worker has to answer a spot check")
    spot_check_rounds_per_day: int = Field(default=1, ge=0, le=10, description="Spot-check rounds per working day")
    spot_check_seed: str | None = Field(default=None, description="Seed for the random choice (tests, replays); default random")
    # Warnings and campaigns (services/warnings.py, services/campaigns.py); drills are flagged per warning/campaign/case.
    warning_reminder_minutes: int = Field(default=10, ge=1, description="Minutes between reminders of an unacknowledged warning")
    warning_reminder_max: int = Field(default=6, ge=0, description="Reminders of one warning at most")
    campaign_place_radius_m: int = Field(default=100, ge=1, description="How near a campaign place the on-site location must be")
    campaign_problem_category: str = Field(default="fire_hazard", description="Category of the case a campaign problem opens (unless the campaign names one)")

    # --- Sandbox mode (bot/sandbox.py, api/console.py). Without BOT_TOKEN, "auto" runs the bot
    # against the built-in Bot API emulator and serves the web console at /console; "off" leaves
    # the bot off instead (a production host that has no token yet should say "off").
    sandbox: Literal["auto", "off"] = "auto"
    # The sandbox refuses an API_HOST that is not a loopback address unless this is set.
    allow_non_loopback_sandbox: bool = False
    # "on" also runs the WeCom / 政务微信 emulator in the sandbox (onegrid/sandbox_wecom.py) with generated
    # credentials and puts the demo worker on WeCom: the console shows their pane as a WeCom conversation.
    sandbox_wecom: Literal["on", "off"] = "off"

    # --- WeCom / 政务微信 (wecom/): workers and supervisors on the government messenger. All five of CORP_ID,
    # AGENT_ID, SECRET, TOKEN, ENCODING_AES_KEY turn the channel on; API_BASE points at a private deployment.
    wecom_corp_id: str | None = Field(default=None, description="企业ID (corpid) of the WeCom / 政务微信 organisation")
    wecom_agent_id: int | None = Field(default=None, description="AgentId of the OneGrid app in WeCom")
    wecom_secret: SecretStr | None = Field(default=None, description="The app's Secret (for gettoken)")
    wecom_token: SecretStr | None = Field(default=None, description="Callback Token (signs callbacks)")
    wecom_encoding_aes_key: SecretStr | None = Field(default=None, description="Callback EncodingAESKey (43 chars)")
    wecom_api_base: str = Field(default="https://qyapi.weixin.qq.com", description="WeCom API base URL")

    # --- Life-safety alarms (services/elders.py, services/duty_roster.py, services/welfare.py).
    elder_retention_days: int = Field(default=30, ge=0, description="Days after an elder leaves the roster "
                                      "before their personal data is emptied (0: keep for ever)")
    coverage_lookahead_hours: int = Field(default=12, ge=1, le=168, description="A duty-roster gap now or "
                                          "within this many hours alerts the street supervisor")
    coverage_check_interval_s: float = Field(default=60.0, gt=0, description="How often duty-roster gaps are looked for")

    @property
    def wecom_enabled(self) -> bool:
        """True when every WeCom setting needed to receive and send is present."""
        return all(v is not None for v in (self.wecom_corp_id, self.wecom_agent_id, self.wecom_secret,
                                           self.wecom_token, self.wecom_encoding_aes_key))

    @property
    def sandbox_active(self) -> bool:
        """True when OneGrid should run in sandbox mode: no bot token and the sandbox not turned off."""
        return self.bot_token is None and self.sandbox == "auto"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'onegrid.sqlite3').resolve()}"

    @property
    def snapshot_host_list(self) -> frozenset[str]:
        """`snapshot_hosts` as lower-case entries; empty when fetching is off."""
        return frozenset(h.strip().lower() for h in self.snapshot_hosts.split(",") if h.strip())

    @property
    def photo_dir(self) -> Path:
        return self.data_dir / "photos"
