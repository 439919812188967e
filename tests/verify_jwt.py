#!/usr/bin/env python3
"""An independent verifier of breakglass grant tokens (EdDSA JWTs: RFC 7515,
RFC 7519, RFC 8037, key ids by RFC 7638), written from the RFCs with no code
shared with breakglass. The Rust tests run it to show that tokens made by
breakglass-core verify elsewhere.

Usage: verify_jwt.py < {"jwks": {...}, "token": "...", "issuer": "...", "now": SECONDS}
Exits 0 and prints the claims as JSON when the token verifies, 1 with "FAIL: ..." otherwise.
"""
import base64
import hashlib
import json
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def b64url(s):
    if not re.fullmatch(r"[A-Za-z0-9_-]*", s):
        fail("not unpadded base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def thumbprint(x):
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


req = json.load(sys.stdin)
keys = {}
for jwk in req["jwks"]["keys"]:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or jwk.get("alg") != "EdDSA":
        fail("not an Ed25519 EdDSA key")
    if jwk.get("kid") != thumbprint(jwk["x"]):
        fail("kid is not the RFC 7638 thumbprint of the key")
    keys[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(b64url(jwk["x"]))

parts = req["token"].split(".")
if len(parts) != 3:
    fail("not three parts")
header = json.loads(b64url(parts[0]))
if header.get("alg") != "EdDSA" or header.get("typ") != "breakglass-grant+jwt":
    fail("wrong alg or typ: %r" % header)
if header.get("kid") not in keys:
    fail("unknown kid")
try:
    keys[header["kid"]].verify(b64url(parts[2]), (parts[0] + "." + parts[1]).encode())
except InvalidSignature:
    fail("bad signature")
claims = json.loads(b64url(parts[1]))
for name in ("iss", "aud", "sub", "grant", "scopes", "caps", "nbf", "exp", "iat", "jti"):
    if name not in claims:
        fail("no " + name)
if claims["iss"] != req["issuer"] or claims["aud"] != "breakglass":
    fail("wrong issuer or audience")
if not claims["nbf"] <= req["now"] < claims["exp"]:
    fail("not valid now")
print(json.dumps(claims, sort_keys=True))
