"""The WeCom / 政务微信 channel: staff (workers, supervisors) on the government edition of WeCom.

formats.py (the documented message fields), crypto.py (callback signature and AES), client.py (the
API with its access token), sender.py (the outbox loop), renderers*.py (domain events -> messages),
callback.py (the callback route), handlers.py (inbound messages -> services), emulator/ (a stand-in).
"""
