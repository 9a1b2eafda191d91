"""Verifies a webhook with the independent Standard Webhooks implementation from PyPI.

Usage: verify_webhook.py SECRET HEADERS_JSON BODY_FILE  -> prints the verified payload as JSON.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

secret, headers, body_path = sys.argv[1:]
with open(body_path, "rb") as body:
    payload = Webhook(secret).verify(body.read(), json.loads(headers))
print(json.dumps(payload))
