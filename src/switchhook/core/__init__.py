"""Pure domain: events, hooks, filters, templates, retry schedule, signing. No I/O, no framework."""
