"""The developer commands `switchhook listen` and `switchhook send`, as real processes over real HTTP."""
