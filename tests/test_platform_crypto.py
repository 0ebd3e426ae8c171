"""Platform crypto: published WeCom/DingTalk vectors, round-trip properties, every failure mode."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import example, given
from hypothesis import strategies as st

from bot.adapters.dingtalk_sign import (
    DingTalkSignError,
    sign,
    signed_webhook_url,
    verify_callback,
)
from bot.adapters.wecom_crypto import (
    WeComCrypto,
    WeComCryptoError,
    WeComMalformedError,
    WeComSignatureError,
    encrypted_reply_xml,
    parse_xml,
)

# --- published vectors (docs/PLATFORMS.md "Test vectors") --------------------------------------

V1_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
V1_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
V1_CORPID = "ww1436e0e65a779aee"
V1_ECHOSTR = (
    "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
)
V1_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAg"
    "GzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9"
    "U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qA"
    "RR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL"
    "6aSDPOYuPDGOCI8jmnKiypE+"
)
V1_PLAINTEXT = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
    "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
)

V2_TOKEN = "QDG6eK"
V2_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
V2_CORPID = "wx5823bf96d3bd56c7"
V2_ECHOSTR = (
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
)
V2_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCU"
    "pj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgp"
    "ue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCK"
    "Iw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o"
    "0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2"
    "pDBS8R07+qN+E7Q=="
)

V3_TOKEN = "123456"
V3_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
V3_CORPID = "wx49f0ab532d5d035a"
V3_ECHOSTR = (
    "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
)
V3_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrs"
    "TyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+"
    "BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7"
    "vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dSh"
    "yqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)
V3_REPLY_PLAINTEXT = "\n".join(
    [
        "<xml>",
        "<MsgType><![CDATA[text]]></MsgType>",
        "<Content><![CDATA[test]]></Content>",
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>",
        "<ToUserName><![CDATA[messense]]></ToUserName>",
        "<AgentID>1</AgentID>",
        "<CreateTime>1411525903</CreateTime>",
        "</xml>",
    ]
)
V3_REPLY_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGs"
    "L8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZS"
    "jPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJ"
    "vFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeF"
    "YFMNMpatF9XiKzHo3"
)

DT_SECRET = "this is secret"
DT_TS = 1700000000000
DT_SIGN = "sSFWELbV2YwjdDQhWZwTcWlX5BWUx5J6TPpsZmuPii0="
DT_SIGN_URL = "sSFWELbV2YwjdDQhWZwTcWlX5BWUx5J6TPpsZmuPii0%3D"


def _v1() -> WeComCrypto:
    return WeComCrypto(V1_TOKEN, V1_KEY, V1_CORPID)


def _v3() -> WeComCrypto:
    return WeComCrypto(V3_TOKEN, V3_KEY, V3_CORPID)


def _v3_encrypt_raw(plain: bytes) -> str:
    """AES-CBC under the V3 key with no padding applied, to forge malformed plaintexts."""
    key = base64.b64decode(V3_KEY + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def _v3_decrypt_raw(encrypted: str) -> bytes:
    key = base64.b64decode(V3_KEY + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    return decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()


def _envelope(
    msg: bytes, receive_id: bytes = V3_CORPID.encode(), length: int | None = None
) -> bytes:
    n = len(msg) if length is None else length
    return b"R" * 16 + struct.pack(">I", n) + msg + receive_id


# --- WeCom vectors ------------------------------------------------------------------------------


def test_v1_verify_url() -> None:
    got = _v1().verify_url(
        "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", V1_ECHOSTR
    )
    assert got == "1288432023552776189"


def test_v1_decrypt_xml_body() -> None:
    body = (
        f"<xml><ToUserName><![CDATA[{V1_CORPID}]]></ToUserName>\n"
        f"<Encrypt><![CDATA[{V1_ENCRYPT}]]></Encrypt>\n"
        "<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
    ).encode()
    fields = parse_xml(body)
    assert fields == {"ToUserName": V1_CORPID, "Encrypt": V1_ENCRYPT, "AgentID": "1000002"}
    got = _v1().decrypt_xml_body(
        body, "0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914"
    )
    assert got == V1_PLAINTEXT
    assert parse_xml(got.encode())["Content"] == "你好"


def test_v2_verify_url_and_decrypt() -> None:
    crypto = WeComCrypto(V2_TOKEN, V2_KEY, V2_CORPID)
    echo = crypto.verify_url(
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", V2_ECHOSTR
    )
    assert echo == "1616140317555161061"
    crypto.verify_signature(
        "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", V2_ENCRYPT
    )
    fields = parse_xml(crypto.decrypt(V2_ENCRYPT).encode())
    assert fields["MsgType"] == "text"
    assert fields["FromUserName"] == "mycreate"
    assert fields["Content"] == "hello"
    assert fields["MsgId"] == "4561255354251345929"
    assert fields["AgentID"] == "218"


def test_v2_pad_byte_is_30() -> None:
    """A pad value above 16 is what rules out 16-byte-block library unpadding."""
    key = base64.b64decode(V2_KEY + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(V2_ENCRYPT)) + decryptor.finalize()
    assert plain[-30:] == bytes([30]) * 30


def test_v3_check_signature() -> None:
    got = _v3().verify_url(
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425", V3_ECHOSTR
    )
    assert got == "5927782489442352469"


def test_v3_check_signature_wrong_nonce_fails() -> None:
    with pytest.raises(WeComSignatureError):
        _v3().verify_url(
            "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374424", V3_ECHOSTR
        )


def test_v3_decrypt_message() -> None:
    crypto = _v3()
    crypto.verify_signature(
        "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", V3_ENCRYPT
    )
    fields = parse_xml(crypto.decrypt(V3_ENCRYPT).encode())
    assert fields["Content"] == "test"
    assert fields["FromUserName"] == "messense"


def test_v3_encrypt_message_forced_prefix() -> None:
    encrypted, signature = _v3().encrypt(
        V3_REPLY_PLAINTEXT, "461056294", "1411525903", random_prefix=b"1234567890123456"
    )
    assert encrypted == V3_REPLY_ENCRYPT
    assert signature == "407518b7649e86ef23978113f92d27afa9296533"
    assert _v3().decrypt(encrypted) == V3_REPLY_PLAINTEXT


def test_v3_encrypted_reply_xml() -> None:
    xml = encrypted_reply_xml(
        V3_REPLY_ENCRYPT, "407518b7649e86ef23978113f92d27afa9296533", "1411525903", "461056294"
    )
    assert xml == (
        f"<xml><Encrypt><![CDATA[{V3_REPLY_ENCRYPT}]]></Encrypt>"
        "<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>"
        "<TimeStamp>1411525903</TimeStamp><Nonce><![CDATA[461056294]]></Nonce></xml>"
    )
    fields = parse_xml(xml.encode())
    _v3().verify_signature(
        fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]
    )


def test_signature_is_sorted_sha1() -> None:
    assert _v3().signature("1411525903", "461056294", V3_ENCRYPT) == (
        "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
    )


# --- WeCom round-trip properties ----------------------------------------------------------------

aes_keys = st.binary(min_size=32, max_size=32).map(lambda k: base64.b64encode(k).decode()[:-1])
tokens = st.text(min_size=1, max_size=40)
receive_ids = st.one_of(st.just(""), st.text(max_size=40))
messages = st.one_of(st.text(), st.text(min_size=1, max_size=40).map(lambda s: s * 200))
# Characters XML can carry verbatim (no C0 controls, which also rules out CR normalisation).
xml_safe_text = st.text(st.characters(exclude_categories=("Cs", "Cc", "Cn")), max_size=32)
timestamps = st.integers(min_value=0, max_value=2**40).map(str)


@given(aes_keys, tokens, receive_ids, messages, xml_safe_text, timestamps)
@example(V3_KEY, V3_TOKEN, "", "", "n", "1")
@example(V3_KEY, V3_TOKEN, V3_CORPID, "督办" * 3000, "]]>", "1")
def test_xml_round_trip(
    key: str, token: str, receive_id: str, msg: str, nonce: str, ts: str
) -> None:
    crypto = WeComCrypto(token, key, receive_id)
    encrypted, signature = crypto.encrypt(msg, nonce, ts)
    body = encrypted_reply_xml(encrypted, signature, ts, nonce).encode()
    fields = parse_xml(body)
    assert fields == {
        "Encrypt": encrypted,
        "MsgSignature": signature,
        "TimeStamp": ts,
        "Nonce": nonce,
    }
    assert crypto.decrypt_xml_body(body, signature, ts, nonce) == msg
    assert len(base64.b64decode(encrypted)) % 32 == 0


@given(aes_keys, tokens, receive_ids, messages, st.text(max_size=32), timestamps)
@example(V3_KEY, V3_TOKEN, "", "", "", "0")
def test_json_round_trip(
    key: str, token: str, receive_id: str, msg: str, nonce: str, ts: str
) -> None:
    crypto = WeComCrypto(token, key, receive_id)
    inner = {"msgtype": "text", "text": {"content": msg}}
    reply = crypto.encrypted_json_reply(json.dumps(inner, ensure_ascii=False), nonce, ts)
    assert set(reply) == {"encrypt", "msgsignature", "timestamp", "nonce"}
    assert (reply["timestamp"], reply["nonce"]) == (ts, nonce)
    body = json.dumps({"encrypt": reply["encrypt"]}).encode()
    assert crypto.decrypt_json_body(body, reply["msgsignature"], ts, nonce) == inner


@given(receive_ids, messages)
def test_raw_round_trip_and_fresh_prefix(receive_id: str, msg: str) -> None:
    crypto = WeComCrypto(V3_TOKEN, V3_KEY, receive_id)
    first, _ = crypto.encrypt(msg, "n", "1")
    second, _ = crypto.encrypt(msg, "n", "1")
    assert crypto.decrypt(first) == crypto.decrypt(second) == msg
    assert first != second


# --- WeCom failure modes ------------------------------------------------------------------------


def test_error_kinds_map_to_http_status() -> None:
    assert issubclass(WeComCryptoError, ValueError)
    assert (WeComSignatureError.kind, WeComSignatureError.http_status) == ("signature", 403)
    assert (WeComMalformedError.kind, WeComMalformedError.http_status) == ("malformed", 400)


def test_tampered_signature() -> None:
    good = "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
    for bad in (good[:-1] + "e", good.upper(), "", "签名", good + "0"):
        with pytest.raises(WeComSignatureError) as info:
            _v3().verify_signature(bad, "1411525903", "461056294", V3_ENCRYPT)
        assert info.value.http_status == 403


def test_tampered_ciphertext_fails_signature_before_decrypt() -> None:
    tampered = "A" + V3_ENCRYPT[1:]
    with pytest.raises(WeComSignatureError):
        _v3().verify_url(
            "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", tampered
        )


def test_wrong_receive_id() -> None:
    with pytest.raises(WeComMalformedError, match="receiveid"):
        WeComCrypto(V3_TOKEN, V3_KEY, "wxSOMEONEELSE").decrypt(V3_ENCRYPT)
    with pytest.raises(WeComMalformedError, match="receiveid"):
        WeComCrypto(V3_TOKEN, V3_KEY, "").decrypt(V3_ENCRYPT)
    bot_msg, _ = WeComCrypto(V3_TOKEN, V3_KEY, "").encrypt("hi", "n", "1")
    with pytest.raises(WeComMalformedError, match="receiveid"):
        _v3().decrypt(bot_msg)


@pytest.mark.parametrize("bad", ["not base64!!", "abc", "QUJD\nREVG", "密文", "QUJDRA=x"])
def test_bad_base64(bad: str) -> None:
    with pytest.raises(WeComMalformedError):
        _v3().decrypt(bad)


@pytest.mark.parametrize("size", [0, 1, 15, 17, 31, 33])
def test_ciphertext_not_a_multiple_of_16(size: int) -> None:
    with pytest.raises(WeComMalformedError, match="multiple of 16"):
        _v3().decrypt(base64.b64encode(b"\x01" * size).decode())


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00",  # zero is never a pad value
        b"\x21",  # 33 exceeds the 32-byte block
        b"\xff",
        b"\x05" * 3 + b"\x04" + b"\x05",  # claims 5, one byte disagrees
        b"\x02\x03",  # claims 3 but is preceded by a different byte
    ],
)
def test_bad_padding(tail: bytes) -> None:
    head = _envelope(b"hello")
    filler = (-(len(head) + len(tail))) % 32
    plain = head + b"\x07" * filler + tail
    with pytest.raises(WeComMalformedError, match="padding"):
        _v3().decrypt(_v3_encrypt_raw(plain))


def test_pad_longer_than_plaintext() -> None:
    with pytest.raises(WeComMalformedError, match="padding"):
        _v3().decrypt(_v3_encrypt_raw(bytes([32]) * 16))


def test_length_field_longer_than_plaintext() -> None:
    plain = _envelope(b"hello", receive_id=b"", length=6)
    padded = plain + bytes([32 - len(plain) % 32]) * (32 - len(plain) % 32)
    with pytest.raises(WeComMalformedError, match="length field"):
        _v3().decrypt(_v3_encrypt_raw(padded))
    huge = b"R" * 16 + b"\xff\xff\xff\xff" + b"x" * 10 + bytes([2]) * 2
    with pytest.raises(WeComMalformedError, match="length field"):
        _v3().decrypt(_v3_encrypt_raw(huge))


def test_truncated_plaintext() -> None:
    plain = b"R" * 16 + bytes([16]) * 16  # unpads to 16 bytes: no room for the length field
    with pytest.raises(WeComMalformedError, match="too short"):
        _v3().decrypt(_v3_encrypt_raw(plain))


def test_message_not_utf8() -> None:
    plain = _envelope(b"\xff\xfe")
    padded = plain + bytes([32 - len(plain) % 32]) * (32 - len(plain) % 32)
    with pytest.raises(WeComMalformedError, match="UTF-8"):
        _v3().decrypt(_v3_encrypt_raw(padded))


def test_forged_helper_accepts_a_well_formed_envelope() -> None:
    """Guards the failure tests above: the forging helper itself produces valid envelopes."""
    plain = _envelope("督办".encode())
    padded = plain + bytes([32 - len(plain) % 32]) * (32 - len(plain) % 32)
    assert _v3().decrypt(_v3_encrypt_raw(padded)) == "督办"
    assert _v3_decrypt_raw(_v3_encrypt_raw(padded)) == padded


@pytest.mark.parametrize(
    "key",
    [
        "",
        V3_KEY[:-1],  # 42 characters
        V3_KEY + "A",  # 44 characters
        V3_KEY[:-1] + "!",  # right length, not base64
        V3_KEY[:-1] + "=",  # padding inside the key
        V3_KEY[:-1] + "键",
    ],
)
def test_bad_aes_key(key: str) -> None:
    with pytest.raises(WeComMalformedError) as info:
        WeComCrypto(V3_TOKEN, key, V3_CORPID)
    assert V3_KEY[:20] not in str(info.value)


def test_empty_token_rejected() -> None:
    with pytest.raises(WeComMalformedError):
        WeComCrypto("", V3_KEY, V3_CORPID)


def test_secrets_never_in_messages_or_repr() -> None:
    crypto = _v3()
    assert V3_KEY not in repr(crypto)
    assert V3_TOKEN not in repr(crypto)
    failures: list[Callable[[], object]] = [
        lambda: crypto.verify_signature("0" * 40, "1", "2", V3_ENCRYPT),
        lambda: WeComCrypto(V3_TOKEN, V3_KEY, "other").decrypt(V3_ENCRYPT),
        lambda: crypto.decrypt("%%%"),
        lambda: WeComCrypto(V3_TOKEN, V3_KEY[:-1] + "!", V3_CORPID),
    ]
    for fail in failures:
        with pytest.raises(WeComCryptoError) as info:
            fail()
        assert V3_KEY not in str(info.value)
        assert V3_TOKEN not in str(info.value)


# --- XML parsing --------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<xml><Content>&lol4;</Content></xml>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><Content>&xxe;</Content></xml>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<xml><Content>x</Content></xml>"""

EXTERNAL_DTD = b"""<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd"><xml><A>x</A></xml>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY, EXTERNAL_DTD])
def test_doctype_and_entities_rejected(body: bytes) -> None:
    with pytest.raises(WeComMalformedError, match="DOCTYPE"):
        parse_xml(body)
    with pytest.raises(WeComMalformedError):
        _v3().decrypt_xml_body(body, "0" * 40, "1", "2")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<xml><Encrypt>abc</xml>",
        b"<xml></xml><xml></xml>",
        b"<xml><A>&undefined;</A></xml>",
        b"<xml><A>\xff</A></xml>",
    ],
)
def test_malformed_xml(body: bytes) -> None:
    with pytest.raises(WeComMalformedError, match="malformed XML"):
        parse_xml(body)


def test_parse_xml_flat_fields() -> None:
    body = (
        b"<?xml version='1.0' encoding='utf-8'?>"
        b"<xml><A><![CDATA[ x & <y> ]]></A><B>1 &amp; 2</B><A>second</A>"
        b"<Nested>t<Inner>deep</Inner>u</Nested><Empty/></xml>"
    )
    assert parse_xml(body) == {"A": " x & <y> ", "B": "1 & 2", "Nested": "tu", "Empty": ""}


def test_decrypt_xml_body_without_encrypt() -> None:
    with pytest.raises(WeComMalformedError, match="Encrypt"):
        _v3().decrypt_xml_body(b"<xml><ToUserName>x</ToUserName></xml>", "0" * 40, "1", "2")


# --- JSON body failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"encrypt": 5}',
        b'{"other": "x"}',
        b'{"encrypt": ""}',
        b"\xff",
    ],
)
def test_json_body_malformed(body: bytes) -> None:
    with pytest.raises(WeComMalformedError):
        _v3().decrypt_json_body(body, "0" * 40, "1", "2")


def test_json_body_bad_signature() -> None:
    body = json.dumps({"encrypt": V3_ENCRYPT}).encode()
    with pytest.raises(WeComSignatureError):
        _v3().decrypt_json_body(body, "0" * 40, "1411525903", "461056294")


@pytest.mark.parametrize("inner", ["[1]", "not json", '"str"'])
def test_json_plaintext_not_an_object(inner: str) -> None:
    crypto = _v3()
    reply = crypto.encrypted_json_reply(inner, "n", "1")
    body = json.dumps({"encrypt": reply["encrypt"]}).encode()
    with pytest.raises(WeComMalformedError, match="plaintext"):
        crypto.decrypt_json_body(body, reply["msgsignature"], "1", "n")


def test_encrypt_rejects_bad_prefix_length() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        _v3().encrypt("x", "n", "1", random_prefix=b"short")


# --- DingTalk -----------------------------------------------------------------------------------


def test_dingtalk_sign_vector() -> None:
    assert sign(DT_TS, DT_SECRET) == DT_SIGN
    assert sign(str(DT_TS), DT_SECRET) == DT_SIGN


def test_dingtalk_webhook_url_vector() -> None:
    url = signed_webhook_url("https://oapi.dingtalk.com", "abc123", DT_SECRET, DT_TS)
    assert url == (
        "https://oapi.dingtalk.com/robot/send?access_token=abc123"
        f"&timestamp={DT_TS}&sign={DT_SIGN_URL}"
    )


@pytest.mark.parametrize(
    "base", ["https://oapi.dingtalk.com/", "https://oapi.dingtalk.com/robot/send"]
)
def test_dingtalk_webhook_url_base_forms(base: str) -> None:
    url = signed_webhook_url(base, "abc123", DT_SECRET, DT_TS)
    assert url.startswith("https://oapi.dingtalk.com/robot/send?access_token=abc123&")


@pytest.mark.parametrize("secret", [None, ""])
def test_dingtalk_webhook_url_without_secret(secret: str | None) -> None:
    url = signed_webhook_url("https://gov.example/api", "a b&c", secret, DT_TS)
    assert url == "https://gov.example/api/robot/send?access_token=a+b%26c"


def test_dingtalk_verify_ok() -> None:
    verify_callback(str(DT_TS), DT_SIGN, DT_SECRET, now_ms=DT_TS + 5_000)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [(None, DT_SIGN), (str(DT_TS), None), (None, None), ("", DT_SIGN), (str(DT_TS), "")],
)
def test_dingtalk_missing(timestamp: str | None, signature: str | None) -> None:
    with pytest.raises(DingTalkSignError) as info:
        verify_callback(timestamp, signature, DT_SECRET, now_ms=DT_TS)
    assert info.value.reason == "missing"


@pytest.mark.parametrize(
    "timestamp",
    ["1.7e12", "-1700000000000", " 1700000000000", "1700000000000 ", "１７", "0x10", "9" * 30],
)
def test_dingtalk_bad_timestamp(timestamp: str) -> None:
    with pytest.raises(DingTalkSignError) as info:
        verify_callback(timestamp, DT_SIGN, DT_SECRET, now_ms=DT_TS)
    assert info.value.reason == "bad_timestamp"


@pytest.mark.parametrize("offset", [3_600_000, -3_600_000])
def test_dingtalk_exactly_one_hour_is_accepted(offset: int) -> None:
    verify_callback(str(DT_TS), DT_SIGN, DT_SECRET, now_ms=DT_TS + offset)


@pytest.mark.parametrize("offset", [3_600_001, -3_600_001])
def test_dingtalk_just_beyond_one_hour_is_expired(offset: int) -> None:
    with pytest.raises(DingTalkSignError) as info:
        verify_callback(str(DT_TS), DT_SIGN, DT_SECRET, now_ms=DT_TS + offset)
    assert info.value.reason == "expired"


@pytest.mark.parametrize(
    "signature", [DT_SIGN_URL, DT_SIGN[:-2] + "1=", "签名", sign(DT_TS, "other secret")]
)
def test_dingtalk_mismatch(signature: str) -> None:
    with pytest.raises(DingTalkSignError) as info:
        verify_callback(str(DT_TS), signature, DT_SECRET, now_ms=DT_TS)
    assert info.value.reason == "mismatch"
    assert DT_SECRET not in str(info.value)


def test_dingtalk_signature_bound_to_timestamp() -> None:
    with pytest.raises(DingTalkSignError) as info:
        verify_callback(str(DT_TS + 1), DT_SIGN, DT_SECRET, now_ms=DT_TS)
    assert info.value.reason == "mismatch"


@given(st.integers(min_value=0, max_value=2**53), st.text(min_size=1))
def test_dingtalk_round_trip(ts: int, secret: str) -> None:
    verify_callback(str(ts), sign(ts, secret), secret, now_ms=ts)
