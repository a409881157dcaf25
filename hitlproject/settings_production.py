"""Production settings: everything from ``settings`` plus the hardening ``check --deploy`` asks for.

Required environment: ``SECRET_KEY``, ``ALLOWED_HOSTS``; normally ``DATABASE_URL`` and
``REDIS_URL`` too. Set ``SECURE_SSL_REDIRECT=false`` only behind a proxy that already redirects.
"""

from django.core.exceptions import ImproperlyConfigured

from .settings import *  # noqa: F403  (production extends the base settings wholesale)
from .settings import email_settings, env

DEBUG = False
# No staff accounts with the demo's published password (``manage.py hitl_demo`` refuses).
HITL_DEMO_ACCOUNTS = False
# Production sends real mail: SMTP on localhost unless EMAIL_URL says otherwise.
globals().update(email_settings(env.str("EMAIL_URL", default="smtp://localhost:25")))

SECRET_KEY = env.str("SECRET_KEY", default="")
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure"):
    raise ImproperlyConfigured("SECRET_KEY must be set to a random value of 50+ characters.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
CSRF_COOKIE_SECURE = True
