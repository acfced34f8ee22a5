"""The private Mosquitto lives in server/devbroker.py (the demo starts one too); tests import it here."""

from server.devbroker import MOSQUITTO, PrivateMosquitto, TlsFiles, free_port

__all__ = ["MOSQUITTO", "PrivateMosquitto", "TlsFiles", "free_port"]
