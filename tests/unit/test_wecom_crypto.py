"""The WeCom callback crypto: wechatpy (what OneGrid uses) and the emulator's own cipher agree with each
other and with the sample of the WeCom documentation (加解密方案说明)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wecom.crypto import BadSignature, CallbackCrypto
from wecom.emulator.cipher import decrypt, encrypt, envelope, signature
from wecom.formats import BadCallback, button_card, clip, inbound_from_xml

# The documentation's sample: Token, EncodingAESKey, corpid and a URL verification.
TOKEN, KEY, CORP = "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7"
ECHO = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
CRYPTO = CallbackCrypto(token=TOKEN, encoding_aes_key=KEY, corp_id=CORP)


def test_the_documented_url_verification_sample() -> None:
    assert signature(TOKEN, "1409659589", "263014780", ECHO) == "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
    assert decrypt(KEY, ECHO) == ("1616140317555161061", CORP)
    assert CRYPTO.verify_url(msg_signature="5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", timestamp="1409659589",
                             nonce="263014780", echostr=ECHO) == "1616140317555161061"
    with pytest.raises(BadSignature):
        CRYPTO.verify_url(msg_signature="0" * 40, timestamp="1409659589", nonce="263014780", echostr=ECHO)


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=300), st.text(alphabet="0123456789", min_size=1, max_size=10))
def test_what_the_emulator_seals_onegrid_opens(content: str, nonce: str) -> None:
    xml = f"<xml><Content>{content}</Content></xml>"
    sealed = encrypt(KEY, CORP, xml)
    body = envelope(to_user=CORP, agent_id=1, encrypt_b64=sealed)
    assert CRYPTO.decrypt(body, msg_signature=signature(TOKEN, "1", nonce, sealed), timestamp="1", nonce=nonce) == xml
    with pytest.raises(BadSignature):
        CRYPTO.decrypt(body, msg_signature=signature("other", "1", nonce, sealed), timestamp="1", nonce=nonce)


def test_a_ciphertext_for_another_corp_is_refused() -> None:
    sealed = encrypt(KEY, "another-corp", "<xml/>")
    with pytest.raises(BadSignature):
        CRYPTO.decrypt(envelope(to_user=CORP, agent_id=1, encrypt_b64=sealed),
                       msg_signature=signature(TOKEN, "1", "2", sealed), timestamp="1", nonce="2")


def test_callbacks_parse_with_the_documented_field_names() -> None:
    message = inbound_from_xml("<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[li]]>"
                               "</FromUserName><CreateTime>1409659813</CreateTime><MsgType><![CDATA[location]]>"
                               "</MsgType><Location_X>31.2</Location_X><Location_Y>121.4</Location_Y>"
                               "<MsgId>1234567890123456</MsgId><AgentID>1</AgentID></xml>")
    assert (message.from_user, message.msg_type, message.fields["Location_X"], message.dedup_key) == (
        "li", "location", "31.2", "1234567890123456")
    with pytest.raises(BadCallback):
        inbound_from_xml("<xml><Content>no sender</Content></xml>")
    with pytest.raises(BadCallback):
        inbound_from_xml('<!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>')  # defusedxml refuses entities


def test_card_fields_are_cut_to_whole_characters() -> None:
    assert clip("工单" * 100, 30).encode("utf-8").__len__() <= 30
    card = button_card(title="t", buttons=[])["template_card"]
    assert card["card_type"] == "button_interaction" and card["button_list"] == []
