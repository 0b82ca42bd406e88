"""Developer tools behind `switchhook listen` (a local receiver) and `switchhook send` (a catalogue sample)."""
