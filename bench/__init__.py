"""The benchmark harness of issue 5 (`python -m bench`, `make bench`): switchhook end to end beside the limit.

Processes: this one (load generator and the limit client), a receiver process (`bench.receiver`), and one
fresh `switchhook serve` per scenario run. All traffic stays on 127.0.0.1.
"""
