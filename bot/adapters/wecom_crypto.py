"""WeCom callback crypto (加解密方案): signatures, AES-256-CBC envelopes, safe XML and JSON bodies.

Pure functions, no I/O. Every error is a ``WeComCryptoError``; its ``http_status`` tells the
HTTP layer whether to answer 403 (bad signature) or 400 (malformed input). Messages never carry
the token or the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import struct
from typing import Any, ClassVar, Literal, NoReturn
from xml.parsers import expat
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "WeComCrypto",
    "WeComCryptoError",
    "WeComMalformedError",
    "WeComSignatureError",
    "encrypted_reply_xml",
    "parse_xml",
]

# WeCom pads to 32 bytes although AES blocks are 16, so library unpadding cannot be used.
_PAD_BLOCK = 32
_RANDOM_LEN = 16
_HEADER_LEN = _RANDOM_LEN + 4


class WeComCryptoError(ValueError):
    kind: ClassVar[Literal["signature", "malformed"]] = "malformed"
    http_status: ClassVar[int] = 400


class WeComSignatureError(WeComCryptoError):
    kind = "signature"
    http_status = 403


class WeComMalformedError(WeComCryptoError):
    kind = "malformed"
    http_status = 400


def _sha1_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    joined = "".join(sorted((token, timestamp, nonce, encrypted)))
    # SHA-1 is what the protocol specifies; it is not our choice of primitive.
    return hashlib.sha1(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


def _pkcs7_pad(data: bytes) -> bytes:
    n = _PAD_BLOCK - len(data) % _PAD_BLOCK
    return data + bytes([n]) * n


def _pkcs7_unpad(data: bytes) -> bytes:
    if not data:
        raise WeComMalformedError("empty plaintext")
    n = data[-1]
    if not 1 <= n <= _PAD_BLOCK or n > len(data) or data[-n:] != bytes([n]) * n:
        raise WeComMalformedError("bad padding")
    return data[:-n]


class WeComCrypto:
    """One callback endpoint's credentials: token, EncodingAESKey and the expected receiveid.

    ``receive_id`` is the corpid for a self-built app and ``""`` for an internal 智能机器人.
    """

    __slots__ = ("_cipher", "_iv", "_key", "_token", "receive_id")

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not token:
            # An empty token would make every signature computable by anyone.
            raise WeComMalformedError("token must not be empty")
        if len(encoding_aes_key) != 43:
            raise WeComMalformedError("EncodingAESKey must be 43 characters")
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except (binascii.Error, ValueError):
            raise WeComMalformedError("EncodingAESKey is not valid base64") from None
        if len(key) != 32:
            raise WeComMalformedError("EncodingAESKey must decode to 32 bytes")
        self._token = token
        self._key = key
        self._iv = key[:16]
        # Key and IV never change: built once, a fresh context per message (about 5 µs each).
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(self._iv))
        self.receive_id = receive_id

    def __repr__(self) -> str:
        return f"WeComCrypto(receive_id={self.receive_id!r})"

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return _sha1_signature(self._token, timestamp, nonce, encrypted)

    def verify_signature(
        self, msg_signature: str, timestamp: str, nonce: str, encrypted: str
    ) -> None:
        expected = self.signature(timestamp, nonce, encrypted).encode("ascii")
        # Bytes, because compare_digest refuses non-ASCII str and the header is attacker-chosen.
        if not hmac.compare_digest(expected, msg_signature.encode("utf-8")):
            raise WeComSignatureError("msg_signature mismatch")

    def decrypt(self, encrypted_b64: str) -> str:
        """Decrypt one envelope. Callers must verify the signature first (it is the only MAC)."""
        try:
            raw = base64.b64decode(encrypted_b64, validate=True)
        except (binascii.Error, ValueError):
            raise WeComMalformedError("ciphertext is not valid base64") from None
        if not raw or len(raw) % 16:
            raise WeComMalformedError("ciphertext length is not a positive multiple of 16")
        decryptor = self._cipher.decryptor()
        plain = _pkcs7_unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < _HEADER_LEN:
            raise WeComMalformedError("plaintext too short")
        (msg_len,) = struct.unpack(">I", plain[_RANDOM_LEN:_HEADER_LEN])
        end = _HEADER_LEN + msg_len
        if end > len(plain):
            raise WeComMalformedError("length field exceeds plaintext")
        if plain[end:] != self.receive_id.encode("utf-8"):
            raise WeComMalformedError("receiveid mismatch")
        try:
            return plain[_HEADER_LEN:end].decode("utf-8")
        except UnicodeDecodeError:
            raise WeComMalformedError("message is not valid UTF-8") from None

    def encrypt(
        self, msg: str, nonce: str, timestamp: str, random_prefix: bytes | None = None
    ) -> tuple[str, str]:
        """Return ``(encrypt_b64, msg_signature)``; ``random_prefix`` exists for test vectors."""
        if random_prefix is None:
            random_prefix = os.urandom(_RANDOM_LEN)
        if len(random_prefix) != _RANDOM_LEN:
            raise ValueError("random_prefix must be 16 bytes")
        body = msg.encode("utf-8")
        plain = random_prefix + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        encryptor = self._cipher.encryptor()
        raw = encryptor.update(_pkcs7_pad(plain)) + encryptor.finalize()
        encrypted = base64.b64encode(raw).decode("ascii")
        return encrypted, self.signature(timestamp, nonce, encrypted)

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """GET URL verification; the returned plaintext is the whole response body."""
        self.verify_signature(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def decrypt_xml_body(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
        """Self-built app POST: verify and decrypt ``<Encrypt>``; returns the plaintext XML."""
        encrypted = parse_xml(body).get("Encrypt")
        if not encrypted:
            raise WeComMalformedError("missing Encrypt element")
        self.verify_signature(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def decrypt_json_body(
        self, body: bytes, msg_signature: str, timestamp: str, nonce: str
    ) -> dict[str, Any]:
        """智能机器人 POST ``{"encrypt": ...}``: verify, decrypt and parse the inner JSON object."""
        outer = _load_json_object(body, "body")
        encrypted = outer.get("encrypt")
        if not isinstance(encrypted, str) or not encrypted:
            raise WeComMalformedError("missing encrypt field")
        self.verify_signature(msg_signature, timestamp, nonce, encrypted)
        return _load_json_object(self.decrypt(encrypted).encode("utf-8"), "plaintext")

    def encrypted_json_reply(
        self, plaintext_json: str, nonce: str, timestamp: str
    ) -> dict[str, str]:
        encrypted, signature = self.encrypt(plaintext_json, nonce, timestamp)
        return {
            "encrypt": encrypted,
            "msgsignature": signature,
            "timestamp": timestamp,
            "nonce": nonce,
        }


def _load_json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise WeComMalformedError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise WeComMalformedError(f"{what} is not a JSON object")
    return value


def _forbid_dtd(*_args: object) -> NoReturn:
    raise WeComMalformedError("DOCTYPE is not allowed")


def parse_xml(body: bytes) -> dict[str, str]:
    """Return the root's child elements as ``{tag: text}`` (first occurrence wins).

    Safe against XXE and entity expansion without defusedxml: entities can only be declared
    inside a DOCTYPE, and expat is stopped at the DOCTYPE's start, before any declaration is
    read. Text nested deeper than the root's children is ignored; callback bodies are flat.
    """
    fields: dict[str, str] = {}
    stack: list[str] = []
    text: list[str] = []

    def start(tag: str, _attrs: dict[str, str]) -> None:
        stack.append(tag)
        if len(stack) == 2:
            text.clear()

    def end(tag: str) -> None:
        if len(stack) == 2:
            fields.setdefault(tag, "".join(text))
        stack.pop()

    def chars(data: str) -> None:
        if len(stack) == 2:
            text.append(data)

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _forbid_dtd
    # Belt and braces: unreachable once the DOCTYPE is refused, but harmless to set.
    parser.EntityDeclHandler = _forbid_dtd
    parser.ExternalEntityRefHandler = _forbid_dtd
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except expat.ExpatError:
        raise WeComMalformedError("malformed XML") from None
    return fields


def _cdata(value: str) -> str:
    # A literal "]]>" would close the section early; split it across two sections.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def encrypted_reply_xml(encrypt: str, signature: str, timestamp: str, nonce: str) -> str:
    """The passive encrypted reply body for a self-built app callback."""
    return (
        f"<xml><Encrypt>{_cdata(encrypt)}</Encrypt>"
        f"<MsgSignature>{_cdata(signature)}</MsgSignature>"
        f"<TimeStamp>{escape(timestamp)}</TimeStamp>"
        f"<Nonce>{_cdata(nonce)}</Nonce></xml>"
    )
