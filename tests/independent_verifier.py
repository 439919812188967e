#!/usr/bin/env python3
"""An independent verifier of breakglass's audit log outputs, written from the
specifications (RFC 9162, C2SP signed-note, tlog-checkpoint, tlog-proof,
tlog-tiles) with no code shared with breakglass. The Rust tests run it to show
that what `breakglass audit ...` prints is accepted by another implementation.

Usage:
  independent_verifier.py proof VKEY PROOF_FILE ENTRY_FILE
  independent_verifier.py tiles VKEY DIR
Exits 0 and prints "ok ..." when everything verifies, 1 otherwise.
"""
import base64
import hashlib
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def parse_vkey(vkey):
    name, keyhash, material = vkey.strip().split("+", 2)
    raw = base64.b64decode(material)
    if raw[0] != 1 or len(raw) != 33:
        fail("not an Ed25519 verifier key")
    want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if want.hex() != keyhash:
        fail("key hash mismatch")
    return name, want, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_note(note, vkey):
    name, keyid, pub = parse_vkey(vkey)
    sep = note.rfind("\n\n")
    if sep < 0:
        fail("note has no signature block")
    text, sigs = note[: sep + 1], note[sep + 2 :]
    ok = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            fail("bad signature line")
        sig_name, b64 = line[2:].split(" ")
        blob = base64.b64decode(b64)
        if sig_name != name or blob[:4] != keyid:
            continue
        try:
            pub.verify(blob[4:], text.encode())
        except InvalidSignature:
            fail("signature does not verify")
        ok = True
    if not ok:
        fail("no signature by the trusted key")
    return text


def parse_checkpoint(text, origin):
    lines = text.split("\n")
    if lines[0] != origin:
        fail("origin %r != %r" % (lines[0], origin))
    return int(lines[1]), base64.b64decode(lines[2])


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    """RFC 9162 section 2.1.1, recursively."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        fail("index out of range")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            fail("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        fail("inclusion proof does not verify")


def cmd_proof(vkey, proof_file, entry_file):
    text = open(proof_file, encoding="utf-8").read()
    head, checkpoint = text.split("\n\n", 1)
    lines = head.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        fail("bad proof header")
    rest = lines[1:]
    if rest and rest[0].startswith("extra "):
        rest = rest[1:]
    if not rest[0].startswith("index "):
        fail("missing index line")
    index = int(rest[0][6:])
    proof = [base64.b64decode(l) for l in rest[1:]]
    name = vkey.split("+", 1)[0]
    size, root = parse_checkpoint(open_note(checkpoint, vkey), name)
    entry = open(entry_file, "rb").read()
    verify_inclusion(index, size, leaf_hash(entry), proof, root)
    print("ok: entry %d in tree of size %d" % (index, size))


def tile_path(level, n, width):
    parts = []
    while True:
        parts.append(n % 1000)
        n //= 1000
        if n == 0:
            break
    parts.reverse()
    elems = ["x%03d" % p for p in parts[:-1]] + ["%03d" % parts[-1]]
    path = "tile/%s/%s" % (level, "/".join(elems))
    if width != 256:
        path += ".p/%d" % width
    return path


def cmd_tiles(vkey, directory):
    name = vkey.split("+", 1)[0]
    note = open(os.path.join(directory, "checkpoint"), encoding="utf-8").read()
    size, root = parse_checkpoint(open_note(note, vkey), name)
    leaves = []
    for n in range((size + 255) // 256):
        width = min(256, size - n * 256)
        bundle = open(os.path.join(directory, tile_path("entries", n, width)), "rb").read()
        tile = open(os.path.join(directory, tile_path(0, n, width)), "rb").read()
        entries, i = [], 0
        while i < len(bundle):
            length = int.from_bytes(bundle[i : i + 2], "big")
            entries.append(bundle[i + 2 : i + 2 + length])
            i += 2 + length
        if len(entries) != width or len(tile) != 32 * width:
            fail("tile %d has the wrong width" % n)
        for k, e in enumerate(entries):
            h = leaf_hash(e)
            if tile[32 * k : 32 * k + 32] != h:
                fail("level-0 tile %d hash %d does not match its entry" % (n, k))
            leaves.append(h)
    if mth(leaves) != root:
        fail("the entries do not produce the checkpoint's root")
    # Level-1 tiles hold the roots of full level-0 tiles.
    full = size // 256
    if full:
        width = min(256, full)
        tile = open(os.path.join(directory, tile_path(1, 0, width)), "rb").read()
        for k in range(width):
            if tile[32 * k : 32 * k + 32] != mth(leaves[256 * k : 256 * k + 256]):
                fail("level-1 tile hash %d is not the root of level-0 tile %d" % (k, k))
    print("ok: %d entries, root matches the checkpoint" % size)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "proof":
        cmd_proof(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "tiles":
        cmd_tiles(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        sys.exit(2)
