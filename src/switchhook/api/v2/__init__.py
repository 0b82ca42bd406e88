"""The v2 REST resources."""
