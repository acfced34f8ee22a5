"""The private Mosquitto lives in provisioning/devbroker.py (the demo starts one too); tests import it here."""

from provisioning.devbroker import MOSQUITTO, PrivateMosquitto, TlsFiles, free_port

__all__ = ["MOSQUITTO", "PrivateMosquitto", "TlsFiles", "free_port"]
