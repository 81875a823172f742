"""
Settings of the MultiChat example after its move to Portcullis (docs/django.md).

Django keeps the users, the REST API, the rooms and the pages; Portcullis serves the
WebSockets. The values below come from the environment so that the test suite can run
the project against SQLite or PostgreSQL; a real project writes them as it always has.
Every setting Portcullis needs is marked "Portcullis:" with the variable to copy it to.
"""
import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent

# Portcullis: DJANGO_SECRET_KEY (sessions and, by default, SimpleJWT tokens are signed with it).
SECRET_KEY = os.environ["MULTICHAT_SECRET_KEY"]
DEBUG = os.environ.get("MULTICHAT_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "rest_framework.authtoken",
    "channels",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "multichat.urls"
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
            ],
        },
    },
]
WSGI_APPLICATION = "multichat.wsgi.application"
ASGI_APPLICATION = "multichat.asgi.application"


def database(url):
    """DATABASES["default"] from sqlite:PATH or postgres://USER@HOST:PORT/DB?options=..."""
    if url.startswith("sqlite:"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url[len("sqlite:"):]}
    parsed = urlparse(url)
    options = parse_qs(parsed.query).get("options")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parsed.path.lstrip("/"),
        "USER": parsed.username or "",
        "PASSWORD": parsed.password or "",
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        "OPTIONS": {"options": options[0]} if options else {},
    }


# Portcullis: DJANGO_DATABASE_URL (the same database, opened read-only).
DATABASES = {"default": database(os.environ["MULTICHAT_DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Portcullis: DJANGO_SESSION_COOKIE if SESSION_COOKIE_NAME is not "sessionid",
# DJANGO_SESSION_COOKIE_AGE for the signed_cookies engine.
SESSION_ENGINE = os.environ.get("MULTICHAT_SESSION_ENGINE", "django.contrib.sessions.backends.db")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}

# Portcullis: DJANGO_SIMPLE_JWT (as JSON) for whatever differs from SimpleJWT's defaults.
SIMPLE_JWT = {}

# Portcullis: REDIS_URL and CHANNELS_REDIS_PREFIX, so that group_send reaches its sockets.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("MULTICHAT_REDIS_URL", "redis://127.0.0.1:6379")],
            "prefix": os.environ.get("MULTICHAT_CHANNELS_PREFIX", "asgi"),
        },
    },
}

# Where the page's WebSocket goes: Portcullis, beside this site (same host, another port
# here; the same origin behind a proxy in production).
PORTCULLIS_WS_URL = os.environ.get("MULTICHAT_PORTCULLIS_WS_URL", "ws://127.0.0.1:8000/ws/chat/")

# The original example's message types (chat/settings.py there).
MSG_TYPE_MESSAGE = 0
MSG_TYPE_ENTER = 4
MSG_TYPE_LEAVE = 5
NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS = True

USE_TZ = True
TIME_ZONE = "UTC"
