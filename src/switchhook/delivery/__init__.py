"""Outgoing HTTP: egress guard, sender, delivery pipeline and workers."""
