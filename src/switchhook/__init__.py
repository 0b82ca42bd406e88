"""switchhook: a webhook engine for FreeSWITCH/Webitel telephony events."""

__version__ = "0.1.0"
