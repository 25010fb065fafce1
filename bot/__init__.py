"""Telegram wiring: Bot/Dispatcher factory, middlewares, the delivery queue's sender, the emulator."""
