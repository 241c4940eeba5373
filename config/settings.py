"""
The one settings file. Every deployment knob is an environment variable (see
.env.example); with none set, the project runs on embedded defaults: SQLite and a
file-system Celery broker under var/, email printed to the console, so a fresh
checkout works with nothing but Python.
"""

import ipaddress
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()
# A local .env file is a convenience for development; the real environment wins.
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: with DEBUG off the site will not start without a secret key "
            "(set SECRET_KEY in the environment, see .env.example)."
        )
    # Development only: a key that is obviously not for production.
    SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"  # noqa: S105

SITE_URL = env.str("SITE_URL", default="http://localhost:8000").rstrip("/")
SITE_IS_HTTPS = SITE_URL.startswith("https://")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Before the admin: it patches the admin's forms with one field per language.
    "modeltranslation",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "csp",
    "auditlog",
    "django_countries",
    "phonenumber_field",
    "pgtrigger",
    "common.apps.CommonConfig",
    "customers.apps.CustomersConfig",
    "privacy.apps.PrivacyConfig",
    "consents.apps.ConsentsConfig",
    "marketing.apps.MarketingConfig",
    "intake.apps.IntakeConfig",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api.apps.ApiConfig",
    "dashboard.apps.DashboardConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body (the CSRF check reads POST data).
    "common.middleware.PublicBodySizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "common.middleware.CustomerLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "common.middleware.StaffSessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into its lockout response.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First: refuses sign-in while an account or address is locked out.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.site",
            ],
        },
    },
    {
        # The preference page, which every marketing email links to (config/jinja2.py says why).
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "jinja_templates"],
        "APP_DIRS": False,
        "OPTIONS": {
            "environment": "config.jinja2.environment",
            "autoescape": True,
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.site",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# Database: SQLite under var/ unless DATABASE_URL names another (PostgreSQL in production).
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# Web, worker and beat share an SQLite file: readers run beside the writer (WAL), a writer
# waits up to SQLITE_BUSY_TIMEOUT_SECONDS for another's short transaction instead of failing
# at once, and takes the write lock when its transaction begins (IMMEDIATE), so two writers
# queue up rather than one failing part-way. Long jobs (the import) write in short
# transactions, so that nobody waits as long as the timeout.
SQLITE_OPTIONS = {
    "timeout": env.int("SQLITE_BUSY_TIMEOUT_SECONDS", default=30),
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# The preference page's queries as prepared statements of the server (common/prepared.py);
# false behind a connection pooler in transaction mode.
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)

# Two roles on PostgreSQL: the one in DATABASE_URL runs the site, worker and beat and owns no
# table (an owner can disable the ledger's triggers); the one in MIGRATION_DATABASE_URL owns
# the tables and is used by `manage.py migrate` alone, which then grants the runtime role its
# rights (README: Security). Unset, migrate uses DATABASE_URL as before.
MIGRATION_DATABASE = env.db("MIGRATION_DATABASE_URL") if env.str("MIGRATION_DATABASE_URL", default="") else None
if MIGRATION_DATABASE is not None and MIGRATION_DATABASE["ENGINE"] != DATABASES["default"]["ENGINE"]:
    raise ImproperlyConfigured("MIGRATION_DATABASE_URL and DATABASE_URL must name the same kind of database.")

# Triggers (the consent ledger's guard) are installed by migrations, never at run time.
PGTRIGGER_INSTALL_ON_MIGRATE = False

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache_url("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("de", "German"),
    ("fr", "French"),
    ("es", "Spanish"),
    ("it", "Italian"),
    ("nl", "Dutch"),
    ("pt", "Portuguese"),
    ("pl", "Polish"),
    ("sv", "Swedish"),
    ("ja", "Japanese"),
    ("zh-hans", "Chinese (Simplified)"),
]
# Customers may prefer any of LANGUAGES; pages, mails, purposes and campaigns are complete in
# these (locale/<code>/LC_MESSAGES/django.po). Any other preference is served in English.
CUSTOMER_LANGUAGES = ["en", "de", "fr"]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Purposes, policy versions and campaigns have one column per complete language
# (django-modeltranslation); English is the one every text must have and the fallback.
MODELTRANSLATION_LANGUAGES = tuple(CUSTOMER_LANGUAGES)
MODELTRANSLATION_DEFAULT_LANGUAGE = "en"
MODELTRANSLATION_FALLBACK_LANGUAGES = ("en",)
# The language a visitor picks with the switch (?lang=de) is remembered this long (a cookie).
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
# Dates as customers of each language write them (common/formats/<code>/formats.py).
FORMAT_MODULE_PATH = ["common.formats"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# In development WhiteNoise serves straight from the apps; production serves collectstatic output.
WHITENOISE_USE_FINDERS = DEBUG
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Email: printed to the console unless EMAIL_URL names an SMTP relay
# (smtp+tls://user:password@smtp.example.com:587) or a mail provider's API through
# django-anymail (anymail+postmark://SERVER_TOKEN@, see _anymail_email_config).
ANYMAIL_ESPS = ("amazon_ses", "brevo", "mailgun", "postal", "postmark", "sendgrid")
# Webhooks (/anymail/<esp>/tracking/) answer only posts with this HTTP basic auth ("user:password").
ANYMAIL = {"WEBHOOK_SECRET": env.str("ANYMAIL_WEBHOOK_SECRET", default="")}


def _anymail_email_config(url: str) -> tuple[dict, dict]:
    """
    EMAIL_URL=anymail+<esp>://<api key>@<api host>?<option>=<value>: the provider's API through
    django-anymail. The key is the user part (postmark: the server token; amazon_ses: none, boto3
    reads the AWS_* variables); the host, where given, is the provider's API host (mailgun:
    api.eu.mailgun.net; postal: the server's own host, required); amazon_ses takes ?region=.
    Returns (Django email settings, ANYMAIL entries).
    """
    # "amazon_ses" is not a valid URL scheme (no "_"): split the scheme off by hand.
    scheme, _, rest = url.partition("://")
    esp = scheme.split("+", 1)[1]
    parts = urlsplit("//" + rest)
    if esp not in ANYMAIL_ESPS:
        raise ImproperlyConfigured(f"EMAIL_URL: anymail+{esp} is not one of anymail+{', anymail+'.join(ANYMAIL_ESPS)}.")
    key = unquote(parts.username or "")
    host = parts.hostname or ""
    options = dict(parse_qsl(parts.query))
    entries: dict = {}
    if esp == "amazon_ses":
        if options.get("region"):
            entries["AMAZON_SES_CLIENT_PARAMS"] = {"region_name": options["region"]}
    elif not key:
        raise ImproperlyConfigured(f"EMAIL_URL: anymail+{esp}:// needs the API key before the @.")
    elif esp == "postmark":
        entries["POSTMARK_SERVER_TOKEN"] = key
    else:
        entries[f"{esp.upper()}_API_KEY"] = key
    if esp == "mailgun" and host:
        entries["MAILGUN_API_URL"] = f"https://{host}/v3"
    if esp == "postal":
        if not host:
            raise ImproperlyConfigured("EMAIL_URL: anymail+postal://KEY@postal.example.com needs the Postal host.")
        entries["POSTAL_API_URL"] = f"https://{host}"
    return {"EMAIL_BACKEND": f"anymail.backends.{esp}.EmailBackend"}, entries


_email_url = env.str("EMAIL_URL", default="consolemail://")
if _email_url.startswith("anymail+"):
    EMAIL_CONFIG, _anymail_entries = _anymail_email_config(_email_url)
    ANYMAIL.update(_anymail_entries)
else:
    EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
if EMAIL_CONFIG["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend":
    # Printed mail is a log like any other: addresses are masked.
    EMAIL_CONFIG["EMAIL_BACKEND"] = "common.mail.MaskedConsoleBackend"
vars().update(EMAIL_CONFIG)
# The providers' own signatures on their webhooks, checked by anymail where it can (each
# provider's page of the README says where to find the key). Mailgun and Postal webhooks
# need theirs; SendGrid's is optional (basic auth alone is then checked).
for _name in ("MAILGUN_WEBHOOK_SIGNING_KEY", "POSTAL_WEBHOOK_KEY", "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"):
    if env.str(_name, default=""):
        ANYMAIL[_name] = env.str(_name)
# Amazon SNS asks to confirm a new subscription; anymail confirms it when the request carries
# the webhook secret (it calls SNS with the AWS_* credentials).
ANYMAIL["AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS"] = env.bool(
    "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS", default=True
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Example Software <news@example.com>")
# DKIM (RFC 6376): with DKIM_DOMAIN set, every message the site sends is signed with this key
# (`python manage.py dkim_keygen` makes one and prints the DNS record). DKIM_PRIVATE_KEY is the
# PEM text (newlines may be written \n) or the path of a file holding it. The From domain must
# be DKIM_DOMAIN or below it (DMARC alignment): a system check warns otherwise.
DKIM_DOMAIN = env.str("DKIM_DOMAIN", default="").strip().lower()
DKIM_SELECTOR = env.str("DKIM_SELECTOR", default="")
DKIM_PRIVATE_KEY = env.str("DKIM_PRIVATE_KEY", default="")
DKIM_ALGORITHM = env.str("DKIM_ALGORITHM", default="rsa-sha256").strip().lower()
if DKIM_ALGORITHM not in ("rsa-sha256", "ed25519-sha256"):
    raise ImproperlyConfigured(f"DKIM_ALGORITHM must be rsa-sha256 or ed25519-sha256, not {DKIM_ALGORITHM!r}.")
if DKIM_DOMAIN and not (DKIM_SELECTOR and DKIM_PRIVATE_KEY):
    raise ImproperlyConfigured("DKIM_DOMAIN is set: DKIM_SELECTOR and DKIM_PRIVATE_KEY are required too.")
# The backend EMAIL_URL names, behind the signing one. A provider's API (anymail) builds each
# message itself and signs it with the domain verified at the provider: nothing to sign here.
DKIM_SIGNED_EMAIL_BACKEND = EMAIL_CONFIG["EMAIL_BACKEND"]
if DKIM_DOMAIN and not DKIM_SIGNED_EMAIL_BACKEND.startswith("anymail."):
    EMAIL_BACKEND = "common.mail.DkimSigningBackend"
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
COMPANY_NAME = env.str("COMPANY_NAME", default="Example Software Ltd")
COMPANY_POSTAL_ADDRESS = env.str(
    "COMPANY_POSTAL_ADDRESS", default="Example Software Ltd, 1 Example Street, London EC1A 1AA, United Kingdom"
)
# Who customers write to about their data, as consent receipts name the controller (the
# Kantara receipt requires a contact, an email address and a phone number).
COMPANY_EMAIL = env.str("COMPANY_EMAIL", default="") or getaddresses([DEFAULT_FROM_EMAIL])[0][1]
COMPANY_PHONE = env.str("COMPANY_PHONE", default="+44 20 7946 0000")
COMPANY_PRIVACY_CONTACT = env.str("COMPANY_PRIVACY_CONTACT", default="Data Protection Officer")

# Security. Production (an https SITE_URL) gets secure cookies, HSTS and an https redirect
# by default; each can still be set on its own.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_HTTPS_PROXY", default=False) else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=SITE_IS_HTTPS and not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=SITE_IS_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SITE_IS_HTTPS)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if SITE_IS_HTTPS and not DEBUG else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=SITE_IS_HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=SITE_IS_HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# The client's address (rate limits, the sign-in lockout, the IP recorded as consent proof) is
# the socket's, unless the socket is one of these proxies (comma-separated addresses or CIDRs,
# e.g. TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1): then the rightmost X-Forwarded-For address that is
# not one of them. Empty (the default): X-Forwarded-For is never read.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or CIDR network.") from _error

# Staff sessions (customers have none: their pages work from signed links). A session ends
# after STAFF_SESSION_IDLE_MINUTES without a request and STAFF_SESSION_MAX_HOURS after sign-in,
# whatever happens in between (common.middleware.StaffSessionTimeoutMiddleware).
STAFF_SESSION_IDLE_MINUTES = env.int("STAFF_SESSION_IDLE_MINUTES", default=30)
STAFF_SESSION_MAX_HOURS = env.float("STAFF_SESSION_MAX_HOURS", default=8)
SESSION_COOKIE_AGE = int(STAFF_SESSION_MAX_HOURS * 3600)

# Request bodies on public pages (everything outside /admin/) larger than this are refused with
# 413 before they are read: the public forms are a few fields. Staff pages keep Django's limits.
PUBLIC_MAX_BODY_BYTES = env.int("PUBLIC_MAX_BODY_BYTES", default=64 * 1024)

# Celery. With no CELERY_BROKER_URL the broker is kombu's file-system transport under var/,
# which needs no server and works with the worker and beat as separate processes.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# The project's own queue, so two projects sharing a Redis never take each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="consentdesk")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=660)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Use the LOGGING below (with its address masking) in workers too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

# Where errors go. ADMINS="Ops <ops@example.com>,Jo <jo@example.com>": every server error (500)
# is mailed to them (with DEBUG off), and always logged by `django.request` at ERROR, the record
# an operator's log alerting should watch.
ADMINS = getaddresses(env.list("ADMINS", default=[]))
if any(not address or "@" not in address for _, address in ADMINS):
    raise ImproperlyConfigured('ADMINS must be a comma-separated list of "Name <address>" entries.')

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Personal data and secrets stay out of logs: the final text of every line, tracebacks
    # included, has its addresses masked and its link tokens removed.
    "formatters": {
        "plain": {"()": "common.logging.MaskingFormatter", "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    },
    "filters": {
        "mask_email": {"()": "common.logging.MaskEmailFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["mask_email"]},
        "mail_admins": {
            "class": "common.logging.MaskingAdminEmailHandler",
            "level": "ERROR",
            "formatter": "plain",
            "filters": ["require_debug_false", "mask_email"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"handlers": ["console", "mail_admins"], "level": "WARNING", "propagate": False},
        # The development server's request log (query strings may carry an address).
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
# Anything a task prints (the development mail backend, a stray print) is logged at INFO, not
# as a WARNING from celery.redirected.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"

# Product settings.
MONEY_BACK_DAYS = env.int("MONEY_BACK_DAYS", default=30)
# Processes that check a large CSV import's rows on PostgreSQL (customers.imports); 0 or 1: the
# command's own process checks them (the default: on a shared 2-core machine the workers gained
# nothing, docs/benchmarks.md "Import").
IMPORT_CHECK_WORKERS = env.int("IMPORT_CHECK_WORKERS", default=0)
PREFERENCE_LINK_MAX_AGE = timedelta(days=env.int("PREFERENCE_LINK_MAX_AGE_DAYS", default=7))
# The preference link lets one see and change consent and correct ordinary details. Downloading
# one's data, changing the address and asking for erasure need a fresh link mailed to the
# address on file, valid this long; a confirmation link for a new address lasts as long.
SENSITIVE_LINK_MAX_AGE = timedelta(minutes=env.int("SENSITIVE_LINK_MAX_AGE_MINUTES", default=60))
# How long the old address can undo a change of address.
EMAIL_CHANGE_UNDO_PERIOD = timedelta(days=env.int("EMAIL_CHANGE_UNDO_DAYS", default=14))
RETENTION_IP_DAYS = env.int("RETENTION_IP_DAYS", default=180)

# --- consents: preference centre ---------------------------------------------------------
# "Email me my link" is limited per client IP address and per address asked for, in a fixed
# window; past either limit the answer is HTTP 429. Counters live in the cache (CACHE_URL:
# use Redis in production so every web process shares them), counted by django-ratelimit.
PREFERENCE_LINK_LIMIT_PER_IP = env.int("PREFERENCE_LINK_LIMIT_PER_IP", default=10)
PREFERENCE_LINK_LIMIT_PER_EMAIL = env.int("PREFERENCE_LINK_LIMIT_PER_EMAIL", default=3)
PREFERENCE_LINK_LIMIT_WINDOW = timedelta(minutes=env.int("PREFERENCE_LINK_LIMIT_WINDOW_MINUTES", default=60))

# --- marketing: campaigns and sending ------------------------------------------------------
# Deliveries per batch task. Each batch holds its rows and their customers in memory while it
# sends: 500 rows is well under 1 MB of memory, and one SMTP connection per batch.
MARKETING_BATCH_SIZE = env.int("MARKETING_BATCH_SIZE", default=500)
# Rows a batch claims at a time: pause, cancel and a withdrawal take effect at the next claim.
MARKETING_CLAIM_SIZE = env.int("MARKETING_CLAIM_SIZE", default=50)
# Messages per second across all workers (0 = unlimited). Enforced through Redis when the
# broker is Redis; with the file-system broker, per process (logged at start).
MARKETING_SEND_RATE = env.float("MARKETING_SEND_RATE", default=0)
MARKETING_RATE_LIMIT_REDIS_URL = env.str(
    "MARKETING_RATE_LIMIT_REDIS_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "",
)
# Transient SMTP errors (4xx, lost connection): retried with exponential backoff up to a maximum.
MARKETING_MAX_ATTEMPTS = env.int("MARKETING_MAX_ATTEMPTS", default=5)
MARKETING_RETRY_BASE_SECONDS = env.int("MARKETING_RETRY_BASE_SECONDS", default=60)
# A row still "sending" this long after its claim belonged to a worker that died: it becomes
# "unknown" and is never sent again. Must exceed CELERY_TASK_TIME_LIMIT.
MARKETING_SENDING_TIMEOUT = timedelta(
    seconds=env.int("MARKETING_SENDING_TIMEOUT_SECONDS", default=max(1800, CELERY_TASK_TIME_LIMIT + 60))
)
# A sending campaign with queued rows that nobody has worked on for this long (no row in
# flight anywhere, nothing sent) gets its batches enqueued again by the beat tick: the
# broker lost the tasks (a Redis restarted without persistence) or a dead worker held them.
MARKETING_STALL_TIMEOUT = timedelta(seconds=env.int("MARKETING_STALL_SECONDS", default=180))
# Frequency cap: a customer receives at most MARKETING_MAX_PER_CUSTOMER marketing messages (of any
# campaign) per MARKETING_CAP_DAYS; a message beyond it is skipped ("frequency cap") when its row
# is claimed. 0 (the default) is unlimited.
MARKETING_MAX_PER_CUSTOMER = env.int("MARKETING_MAX_PER_CUSTOMER", default=0)
MARKETING_CAP_DAYS = env.int("MARKETING_CAP_DAYS", default=7)
if MARKETING_MAX_PER_CUSTOMER < 0 or MARKETING_CAP_DAYS < 1:
    raise ImproperlyConfigured("MARKETING_MAX_PER_CUSTOMER must be 0 or more and MARKETING_CAP_DAYS at least 1.")
# Identifies the list in every message (List-Id) and the Message-ID domain.
MARKETING_LIST_DOMAIN = env.str("MARKETING_LIST_DOMAIN", default="")
MARKETING_REPLY_TO = env.str("MARKETING_REPLY_TO", default="")
# Provider feedback (marketing/feedback.py): this many soft bounces (messages deferred or
# bounced for a temporary reason) of one address within the window suppress it.
MARKETING_SOFT_BOUNCE_LIMIT = env.int("MARKETING_SOFT_BOUNCE_LIMIT", default=3)
MARKETING_SOFT_BOUNCE_WINDOW_DAYS = env.int("MARKETING_SOFT_BOUNCE_WINDOW_DAYS", default=30)
# A sending campaign pauses itself when its hard-bounce or complaint rate (a fraction: 0.05 is
# 5%) exceeds these, once it has sent at least MARKETING_PAUSE_MIN_SAMPLE messages.
MARKETING_PAUSE_BOUNCE_RATE = env.float("MARKETING_PAUSE_BOUNCE_RATE", default=0.05)
MARKETING_PAUSE_COMPLAINT_RATE = env.float("MARKETING_PAUSE_COMPLAINT_RATE", default=0.003)
MARKETING_PAUSE_MIN_SAMPLE = env.int("MARKETING_PAUSE_MIN_SAMPLE", default=200)
CELERY_BEAT_SCHEDULE["marketing-dispatch-due-campaigns"] = {
    "task": "marketing.tasks.campaigns_tick",
    "schedule": 60.0,
}

# --- privacy operations and staff security ---------------------------------------------------

# Sign-in lockout (django-axes): after AXES_FAILURE_LIMIT failed attempts (a wrong password or
# a wrong second factor) for one username, from one address or from any number of addresses,
# sign-in is refused for AXES_COOLOFF_HOURS. An IPv6 address counts as its /64.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(hours=env.float("AXES_COOLOFF_HOURS", default=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username"]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# The lockout page (admin/locked_out.html) with the admin site's title and header.
AXES_LOCKOUT_CALLABLE = "common.signin.lockout_response"
# The same client address as the link-request limits count (TRUSTED_PROXIES, IPv6 by /64).
AXES_CLIENT_IP_CALLABLE = "common.client.client_ip_for_limits"

# A second factor (TOTP) for staff sign-in: on by default in production (DEBUG off),
# off for `make run`. Enrol a device with `python manage.py enrol_totp USERNAME`.
STAFF_REQUIRE_2FA = env.bool("STAFF_REQUIRE_2FA", default=not DEBUG)
OTP_TOTP_ISSUER = COMPANY_NAME

# Content-Security-Policy: no inline script, nothing from other sites.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],  # the admin sets a few style attributes
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# Suppressed and erased addresses are kept only as a keyed hash (HMAC-SHA256) with this key.
# Set it once in production and never change it: a new key makes every stored hash unknown
# (erased customers could be imported and mailed again). Defaults to one derived from SECRET_KEY.
ADDRESS_HASH_KEY = env.str("ADDRESS_HASH_KEY", default="") or "consentdesk.address-hash:" + SECRET_KEY

# Field-level audit of staff changes (django-auditlog); views and exports are logged by the app.
AUDITLOG_INCLUDE_ALL_MODELS = False

# Retention of log data: IP addresses and user agents older than RETENTION_IP_DAYS (above) are
# cleared from customers and the consent ledger by a daily task, at RETENTION_RUN_HOUR (UTC
# unless TIME_ZONE says otherwise). Each run is recorded (admin: Privacy, Retention runs).
from celery.schedules import crontab  # noqa: E402 (kept in this section)

CELERY_BEAT_SCHEDULE["privacy-retention"] = {
    "task": "privacy.tasks.retention_apply",
    "schedule": crontab(hour=env.int("RETENTION_RUN_HOUR", default=3), minute=17),
}

# --- intake: reseller notifications ------------------------------------------------------
# Paddle Billing: the notification destination's secret key(s), comma-separated (two while a
# secret is rotated). With none set, /webhooks/paddle/ answers 404.
PADDLE_WEBHOOK_SECRETS = env.list("PADDLE_WEBHOOK_SECRETS", default=[])
# How far the signature's `ts` may be from now (Paddle's SDK uses 5 seconds).
PADDLE_WEBHOOK_TOLERANCE_SECONDS = env.int("PADDLE_WEBHOOK_TOLERANCE_SECONDS", default=5)
# The purposes Paddle's checkout box ("may we send you marketing?") stands for, and the exact
# words it showed: the ledger copies them as the wording the customer saw.
PADDLE_MARKETING_PURPOSES = env.list("PADDLE_MARKETING_PURPOSES", default=["newsletter"])
PADDLE_MARKETING_CONSENT_WORDING = env.str("PADDLE_MARKETING_CONSENT_WORDING", default="")
if PADDLE_WEBHOOK_SECRETS and not PADDLE_MARKETING_CONSENT_WORDING.strip():
    raise ImproperlyConfigured(
        "PADDLE_MARKETING_CONSENT_WORDING is required when PADDLE_WEBHOOK_SECRETS is set: "
        "the consent ledger must record the words Paddle's checkout showed."
    )
# A notification whose customer has not arrived is retried (30 s, 60 s, 120 s, ...) this many
# times, then left as "needs attention".
INTAKE_WAIT_MAX_ATTEMPTS = env.int("INTAKE_WAIT_MAX_ATTEMPTS", default=8)
INTAKE_WAIT_FIRST_SECONDS = env.int("INTAKE_WAIT_FIRST_SECONDS", default=30)
# Sign-up and product registration by double opt-in: the confirmation link's lifetime, and
# how many requests one client address or one address may make per PREFERENCE_LINK_LIMIT_WINDOW.
SIGNUP_CONFIRM_MAX_AGE_HOURS = env.int("SIGNUP_CONFIRM_MAX_AGE_HOURS", default=48)
SIGNUP_LIMIT_PER_IP = env.int("SIGNUP_LIMIT_PER_IP", default=10)
SIGNUP_LIMIT_PER_EMAIL = env.int("SIGNUP_LIMIT_PER_EMAIL", default=3)

# --- dashboard: the staff home page and internal analysis -------------------------------------
# The dashboard's aggregates are recomputed by beat this often (seconds); the page reads them.
DASHBOARD_REFRESH_SECONDS = env.int("DASHBOARD_REFRESH_SECONDS", default=300)
# A worker or beat not seen for this long is shown as missing (the heartbeat runs every minute).
DASHBOARD_HEARTBEAT_STALE_SECONDS = env.int("DASHBOARD_HEARTBEAT_STALE_SECONDS", default=180)
# Internal analysis: a figure describing fewer customers than this is not shown.
ANALYSIS_MIN_CELL = env.int("ANALYSIS_MIN_CELL", default=5)
if ANALYSIS_MIN_CELL < 1:
    raise ImproperlyConfigured("ANALYSIS_MIN_CELL must be 1 or more.")
# Months of registrations the analysis page shows, the current month included.
ANALYSIS_MONTHS = env.int("ANALYSIS_MONTHS", default=12)
CELERY_BEAT_SCHEDULE["dashboard-figures"] = {
    "task": "dashboard.tasks.figures_refresh",
    "schedule": float(DASHBOARD_REFRESH_SECONDS),
}
# While a campaign sends, its progress on the dashboard is recounted this often (seconds).
DASHBOARD_PROGRESS_SECONDS = env.int("DASHBOARD_PROGRESS_SECONDS", default=15)
CELERY_BEAT_SCHEDULE["dashboard-progress"] = {
    "task": "dashboard.tasks.progress_refresh",
    "schedule": float(DASHBOARD_PROGRESS_SECONDS),
}
CELERY_BEAT_SCHEDULE["dashboard-heartbeat"] = {"task": "dashboard.tasks.heartbeat", "schedule": 60.0}

# --- api: the REST API ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiKeyRateThrottle"],
    # Requests per API key; past it the answer is 429 with Retry-After.
    "DEFAULT_THROTTLE_RATES": {"api_key": env.str("API_RATE_LIMIT", default="600/min")},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ConsentDesk API",
    "DESCRIPTION": (
        "Customers, consent with proof, product registrations and suppression, for a vendor's shop, "
        "support desk and CRM. Authenticate with `Authorization: Api-Key <key>`; errors are RFC 9457 "
        "problem details."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI from the site itself (drf-spectacular-sidecar): nothing loaded from another site.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "APPEND_COMPONENTS": {"securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "Authorization"}}},
    "SECURITY": [{"ApiKey": []}],
}
API_IDEMPOTENCY_DAYS = env.int("API_IDEMPOTENCY_DAYS", default=7)

# --- consents: consent receipts in the published standards -----------------------------------
# The jurisdiction receipts name (ISO 3166-1 alpha-2: where the controller is established), and
# the privacy policy they link to (default: the site's own policy page, /preferences/policy/).
RECEIPT_JURISDICTION = env.str("RECEIPT_JURISDICTION", default="GB").upper()
PRIVACY_POLICY_URL = env.str("PRIVACY_POLICY_URL", default="")
# The private key receipts are signed with (JWS): a PEM (RSA, EC P-256/P-384/P-521 or Ed25519)
# or the path of a PEM file. Its public half is published at /.well-known/jwks.json. Required
# with DEBUG off (a system check refuses to start without it); in development a key is made
# once and kept in var/receipt-signing-key.pem.
RECEIPT_SIGNING_KEY = env.str("RECEIPT_SIGNING_KEY", default="")
RECEIPT_DEVELOPMENT_KEY_FILE = VAR_DIR / "receipt-signing-key.pem" if DEBUG and not RECEIPT_SIGNING_KEY else None

# --- api: outgoing webhooks ----------------------------------------------------------------
# Attempts per message before it is given up (status "failed"; "send again" in admin retries it).
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
# Exponential backoff: the n-th retry waits WEBHOOK_RETRY_BASE_SECONDS * 2**(n-1), at most
# WEBHOOK_RETRY_MAX_SECONDS (defaults: 1, 2, 4 … 64 minutes; eight attempts span about two hours).
WEBHOOK_RETRY_BASE_SECONDS = env.int("WEBHOOK_RETRY_BASE_SECONDS", default=60)
WEBHOOK_RETRY_MAX_SECONDS = env.int("WEBHOOK_RETRY_MAX_SECONDS", default=6 * 3600)
# How long one attempt may take (connecting and reading the answer).
WEBHOOK_TIMEOUT_SECONDS = env.int("WEBHOOK_TIMEOUT_SECONDS", default=10)
# An endpoint that has failed for this long without a single delivery is disabled and the
# superusers and privacy officers are mailed.
WEBHOOK_DISABLE_AFTER_HOURS = env.int("WEBHOOK_DISABLE_AFTER_HOURS", default=24)
# Endpoint URLs on loopback, private, link-local or reserved addresses are refused (the site
# must not be made to call into its own network); on for development and tests only.
WEBHOOK_ALLOW_PRIVATE_URLS = env.bool("WEBHOOK_ALLOW_PRIVATE_URLS", default=False)
CELERY_BEAT_SCHEDULE["api-webhooks-deliver-due"] = {
    # Picks up retries that are due and messages whose task was lost (a broker restart).
    "task": "api.tasks.webhooks_deliver_due",
    "schedule": 60.0,
}
