"""A WeCom / 政务微信 stand-in for tests and the sandbox (like bot/emulator for Telegram).

Server side (server.py): gettoken, message/send, media/upload, media/get over loopback HTTP, checking
our calls against the documented fields, with injectable errors (expired token, 45009, 5xx).
Member side (members.py): a member who sends text, images, locations, menu clicks and card button
presses as encrypted callbacks, exactly as documented (cipher.py), to OneGrid's callback URL.
"""

from wecom.emulator.members import WecomMember
from wecom.emulator.server import WecomEmulator

__all__ = ["WecomEmulator", "WecomMember"]
