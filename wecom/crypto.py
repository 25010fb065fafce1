"""The callback's security (回调加解密): the SHA1 signature over sorted (token, timestamp, nonce, Encrypt)
and AES-256-CBC of random(16) + msg_len + msg + receiveid, by wechatpy's WeCom crypto.

The envelope XML is parsed with defusedxml here (wechatpy would use xmltodict, which is not hardened);
wechatpy gets the `Encrypt` value only.
"""

from __future__ import annotations

from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from onegrid.settings import Settings
from wecom.formats import BadCallback, parse_xml


class BadSignature(ValueError):
    """The msg_signature does not match, or the ciphertext is not for this corp: refuse, store nothing."""


class CallbackCrypto:
    def __init__(self, *, token: str, encoding_aes_key: str, corp_id: str) -> None:
        self._crypto = WeChatCrypto(token, encoding_aes_key, corp_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> CallbackCrypto:
        return cls(token=settings.wecom_token.get_secret_value(),
                   encoding_aes_key=settings.wecom_encoding_aes_key.get_secret_value(),
                   corp_id=settings.wecom_corp_id)

    def verify_url(self, *, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """验证URL有效性: the decrypted echostr to answer with, or BadSignature."""
        return self._open(lambda: self._crypto.check_signature(msg_signature, timestamp, nonce, echostr))

    def decrypt(self, body: str, *, msg_signature: str, timestamp: str, nonce: str) -> str:
        """The plain XML of a POSTed callback, or BadSignature / BadCallback."""
        encrypt = parse_xml(body).get("Encrypt")
        if not encrypt:
            raise BadCallback("the callback has no Encrypt element")
        return self._open(lambda: self._crypto.decrypt_message({"Encrypt": encrypt}, msg_signature, timestamp, nonce))

    def encrypt(self, xml: str, *, nonce: str, timestamp: str) -> str:
        """A passive reply's envelope (used by the emulator's own checks and by tests)."""
        return self._crypto.encrypt_message(xml, nonce, timestamp)

    @staticmethod
    def _open(fn) -> str:  # noqa: ANN001
        try:
            return fn()
        except InvalidSignatureException as exc:
            raise BadSignature("msg_signature does not match") from exc
        except Exception as exc:  # noqa: BLE001 - bad base64, bad padding, another corp's receiveid
            raise BadSignature("the ciphertext does not decrypt for this corp") from exc
