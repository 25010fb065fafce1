"""The documented callback encryption, written independently of wechatpy so the two check each other.

AES-256-CBC, key = base64(EncodingAESKey + "="), IV = the key's first 16 bytes; plaintext =
random(16) + msg_len (4 bytes, network order) + msg + receiveid, PKCS#7-padded to a 32-byte block;
msg_signature = sha1 of the sorted concatenation of token, timestamp, nonce and the ciphertext.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode("utf-8")).hexdigest()


def _key(encoding_aes_key: str) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise ValueError("an EncodingAESKey is 43 characters of base64 for 32 bytes")
    return key


def encrypt(encoding_aes_key: str, receive_id: str, msg: str, *, random16: bytes | None = None) -> str:
    key = _key(encoding_aes_key)
    body = msg.encode("utf-8")
    plain = (random16 or os.urandom(16)) + struct.pack("!I", len(body)) + body + receive_id.encode("utf-8")
    pad = BLOCK - len(plain) % BLOCK
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def decrypt(encoding_aes_key: str, ciphertext: str) -> tuple[str, str]:
    """(msg, receiveid) of a ciphertext."""
    key = _key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(ciphertext)) + decryptor.finalize()
    plain = plain[: -plain[-1]]
    (length,) = struct.unpack("!I", plain[16:20])
    return plain[20:20 + length].decode("utf-8"), plain[20 + length:].decode("utf-8")


def envelope(*, to_user: str, agent_id: int, encrypt_b64: str) -> str:
    """The POSTed callback body (the encrypted XML packet)."""
    return (f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt_b64}]]></Encrypt><AgentID><![CDATA[{agent_id}]]></AgentID></xml>")
