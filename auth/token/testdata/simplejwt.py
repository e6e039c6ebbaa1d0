"""Mint and verify tokens with djangorestframework-simplejwt, for the Go
interoperability test. Usage:
  simplejwt.py KEY verify-access TOKEN | verify-refresh TOKEN | mint USER_ID
Prints a JSON object. Exit status 2 when Django or simplejwt is missing."""
import json
import sys

try:
    import django
    from django.conf import settings
except ImportError:
    sys.exit(2)

key, mode, arg = sys.argv[1], sys.argv[2], sys.argv[3]
settings.configure(
    SECRET_KEY="unused",
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    SIMPLE_JWT={"SIGNING_KEY": key, "ALGORITHM": "HS256", "USER_ID_CLAIM": "user_id"},
)
django.setup()
try:
    from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
except ImportError:
    sys.exit(2)

if mode == "verify-access":
    print(json.dumps(AccessToken(arg).payload))
elif mode == "verify-refresh":
    print(json.dumps(RefreshToken(arg).payload))
elif mode == "mint":
    refresh = RefreshToken()
    refresh["user_id"] = arg
    refresh["email"] = "py@example.com"
    refresh["user_role"] = "customer"
    print(json.dumps({"access": str(refresh.access_token), "refresh": str(refresh)}))
else:
    sys.exit("unknown mode " + mode)
